"""The inner loop: model, optimizers and metrics for one strategy, and the compiled steps.

Everything is created under `strategy.scope()` and built on a real batch before the first step
(Keras 3 optimizers under MirroredStrategy fail on variables they first see inside a step).
`train_steps(iterator, num_steps)` runs `num_steps` steps in one `tf.function` call, pulling each
batch from the iterator inside the graph (`tf.range` loop), so Python costs nothing per step. It
traces once per run: `num_steps` is a tensor, so cadence boundaries do not retrace.

Losses under a strategy: each replica averages its per-example losses over the GLOBAL batch
(`tf.nn.compute_average_loss`) and scales the model's own losses by the replica count
(`tf.nn.scale_regularization_loss`); the optimizer sums gradients over replicas. The per-replica
batch is `train.batch_size / num_replicas`.

The task (`tasks/base.py`) supplies the model, the per-example loss and the named metrics; nothing
here knows which problem it trains.
"""

from __future__ import annotations

import contextlib
import hashlib

import keras
import numpy as np
import tensorflow as tf

from ..components.schedules import WarmupCosine
from ..config import Config
from ..errors import RunError
from ..tasks.base import Task
from .accumulation import GradientAccumulator
from .cluster import Cluster
from .optimizers import OPTIMIZER_CLASSES
from .outputs import TaskLoss, as_float32, task_metrics


def seed_states(root) -> list[tf.Variable]:
    """Every `keras.random.SeedGenerator` state below `root`.

    A `tf.train.Checkpoint` of a Keras 3 model does not hold these, so noise and dropout would
    not resume exactly without them.
    """
    states, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, keras.random.SeedGenerator):
            states.append(obj.state.value)
        elif isinstance(obj, keras.layers.Layer):
            for value in vars(obj).values():
                stack.extend(value if isinstance(value, (list, tuple)) else [value])
    return states


class Trainer:
    """Model, optimizers, metrics and compiled train / eval steps under one strategy."""

    def __init__(self, cfg: Config, cluster: Cluster, task: Task, source):
        self.cfg = cfg
        self.task = task
        self.strategy = cluster.strategy
        self.num_replicas = cluster.num_replicas
        # With train.accumulate_steps=k, a step is k micro-batches of batch_size / k whose
        # gradients are averaged into one update (loop/accumulation.py).
        self.accumulate_steps = cfg.train.accumulate_steps
        self.global_batch_size = cfg.train.batch_size // self.accumulate_steps
        if self.global_batch_size % self.num_replicas:
            split = (
                f" with train.accumulate_steps={self.accumulate_steps} (micro-batches of "
                f"{self.global_batch_size})"
                if self.accumulate_steps > 1
                else ""
            )
            raise RunError(
                f"train.batch_size={cfg.train.batch_size}{split}: not divisible by the "
                f"{self.num_replicas} replicas; use a multiple of "
                f"{self.num_replicas * self.accumulate_steps}"
            )
        keras.mixed_precision.set_global_policy(cfg.precision.policy)
        self.loss_scaled = cfg.precision.policy == "mixed_float16"
        # On a CPU, TensorFlow's graph optimizer fuses MatMul and BiasAdd into one float16
        # kernel that took 5 s where the two ops take 3 ms (a Dense of 1024 units on a batch of
        # 256, TF 2.21, Xeon with AVX512_FP16; eager calls are not fused, so only compiled
        # steps were slow): float16 without a GPU goes without that rewrite.
        cpu_float16 = self.loss_scaled and not tf.config.list_physical_devices("GPU")
        tf.config.optimizer.set_experimental_options({"remapping": not cpu_float16})
        # Unseeded initializers (Keras' defaults) draw the same weights for the same seed.
        keras.utils.set_random_seed(cfg.seed)
        with self.strategy.scope():
            self.model = task.build_model()
            per_replica = self.global_batch_size // self.num_replicas
            example = tf.nest.map_structure(lambda a: a[:per_replica], source.example_inputs)
            outputs = self.model(example)
            # The task's loss (or per-output losses and their weights) as one callable of
            # (targets, predictions) giving one float32 loss per example.
            self.loss_fn = TaskLoss(task.build_loss(reduction=None), task.loss_weights(), task.name)
            self.loss_fn.check_outputs(outputs, source.example_targets, task.name)
            self.groups = self._optimizer_groups()
            for optimizer, variables in self.groups:
                optimizer.build(variables)
            if self.accumulate_steps > 1:  # each optimizer behind a sum of micro-batch gradients
                self.groups = [
                    (GradientAccumulator(optimizer, variables, self.accumulate_steps), variables)
                    for optimizer, variables in self.groups
                ]
            # The task's metrics take (targets, predictions); the loss and gradient-norm means
            # are the loop's own.
            self.task_train_metrics = task_metrics(task, self.loss_fn)
            self.train_metrics = {
                "loss": keras.metrics.Mean(name="loss"),
                **{metric.name: metric for metric in self.task_train_metrics},
                "grad_norm": keras.metrics.Mean(name="grad_norm"),
            }
            self.eval_metrics = {
                "loss": keras.metrics.Mean(name="loss"),
                **{metric.name: metric for metric in task_metrics(task, self.loss_fn)},
            }
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.variables = [v for _, variables in self.groups for v in variables]
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            model=self.model,
            seeds=seed_states(self.model),
            **{f"optimizer_{name}": opt for name, opt in zip(self.group_names, self.optimizers)},
        )
        replica_step = self._replica_train_step
        if cfg.train.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)
        self._replica_step = replica_step
        self._compiled_steps = tf.function(self._train_steps)
        self._read_flags = (tf.constant(False), tf.constant(True))
        self._chunk_logs = None  # the training metrics read by the last call, when it read them
        self._swap_averages = tf.function(self._swap_model_and_averages)
        self.evaluate_batches = tf.function(self._evaluate_batches)
        # Between chunks too, one compiled call instead of an eager op per metric or weight.
        self._read_train_metrics = tf.function(self._read_and_reset_train_metrics)
        self._weights_finite = tf.function(self._all_weights_finite)

    # -- construction --------------------------------------------------------------------------
    def _make_optimizer(self, learning_rate: float) -> keras.optimizers.Optimizer:
        settings = self.cfg.optimizer
        if settings.schedule == "warmup_cosine":  # a function of the optimizer's iterations
            learning_rate = WarmupCosine(
                learning_rate,
                decay_steps=settings.decay_steps or self.cfg.train.steps,
                warmup_steps=settings.warmup_steps,
                final=settings.min_learning_rate,
            )
        ema = {"use_ema": True, "ema_momentum": settings.ema_decay} if settings.ema_decay else {}
        optimizer = OPTIMIZER_CLASSES[settings.name](learning_rate=learning_rate, **ema)
        if self.loss_scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def _optimizer_groups(self):
        """One optimizer for all variables, or one for the body and one for the head."""
        head_rate = self.cfg.optimizer.head_learning_rate
        if not head_rate:
            self.group_names = ["all"]
            return [
                (
                    self._make_optimizer(self.cfg.optimizer.learning_rate),
                    list(self.model.trainable_variables),
                )
            ]
        groups = self.task.variable_groups(self.model)
        rates = {"body": self.cfg.optimizer.learning_rate, "head": head_rate}
        self.group_names = list(groups)
        return [(self._make_optimizer(rates[name]), list(vs)) for name, vs in groups.items()]

    def apply_configured_learning_rates(self) -> None:
        """Sets each optimizer's rate from the config (a checkpoint restores the old one).

        A schedule holds its rates as constants, not in the checkpoint: built from the config
        of this process, it already has them.
        """
        if self.cfg.optimizer.schedule != "constant":
            return
        rates = {
            "all": self.cfg.optimizer.learning_rate,
            "body": self.cfg.optimizer.learning_rate,
            "head": self.cfg.optimizer.head_learning_rate,
        }
        for name, optimizer in zip(self.group_names, self.optimizers):
            optimizer.learning_rate = rates[name]

    @property
    def optimizers(self):
        """The optimizers themselves (behind their accumulators, with accumulate_steps)."""
        return [getattr(optimizer, "optimizer", optimizer) for optimizer, _ in self.groups]

    # -- one replica's step --------------------------------------------------------------------
    def modify_gradients(self, gradients, loss_scale):
        """Clips to `train.clip_norm` (of the unscaled gradients); edit to change gradients.

        Under a strategy this sees one replica's gradients, before they are summed. The norm
        is that of their sum, the global batch's gradient (one more all-reduce of the gradients
        on several replicas), so the logged `grad_norm` and the clipped update are the same
        whatever the number of replicas; each replica's share is scaled by the same factor.
        """
        context = tf.distribute.get_replica_context()
        summed = gradients
        if context is not None and context.num_replicas_in_sync > 1:
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        norm = tf.linalg.global_norm(summed) / loss_scale
        if self.cfg.train.clip_norm:
            gradients, _ = tf.clip_by_global_norm(
                gradients, self.cfg.train.clip_norm * loss_scale, use_norm=norm * loss_scale
            )
        return gradients, norm

    def _replica_train_step(self, batch):
        """One replica's step on its `(inputs, targets)`; returns 1 if the loss is finite, else 0.

        Exercise `train_step` (the step of a custom training loop): under a `tf.GradientTape`,
        run the model with `training=True`; take the per-example losses
        `self.loss_fn(targets, predictions)` (it casts the predictions to float32; with named
        outputs it sums the weighted loss of each), average them over the GLOBAL batch
        (`tf.nn.compute_average_loss` with `self.global_batch_size`, not a per-replica mean) and
        add the sum of the model's own losses (`self.model.losses`, each cast to float32; 0.0
        for a model without any, where `tf.add_n([])` would fail) passed
        through `tf.nn.scale_regularization_loss` (so that replicas do not count them twice);
        under `self.loss_scaled` (float16), differentiate the first optimizer's
        `scale_loss(loss)` instead of `loss` (`first = self.optimizers[0]`, the optimizer
        itself, also behind a gradient accumulator). Differentiate with respect to
        `self.variables`; pass the gradients to `self.modify_gradients` with the loss scale
        (`tf.cast(first.scale_loss(1.0), tf.float32)` under float16, else `1.0`), so that
        clipping and `grad_norm` see unscaled gradients; give each optimizer of `self.groups`
        its slice of the gradients, in order. Then update `self.train_metrics["loss"]` with
        each example's loss plus the model's own losses (`per_example + model_loss`, unscaled),
        every metric of `self.task_train_metrics` with `(targets, predictions)`, and
        `self.train_metrics["grad_norm"]`; return `tf.cast(tf.math.is_finite(loss), tf.int32)`.

        Hints, if stuck: `tests/loop/test_trainer.py` computes one SGD step by hand
        (`expected_sgd_change`); the step must match it on one device, on two replicas and
        under float16.
        """
        # exercise begin: train_step
        inputs, targets = batch
        first = self.optimizers[0]
        with tf.GradientTape() as tape:
            predictions = self.model(inputs, training=True)
            per_example = self.loss_fn(targets, predictions)
            model_loss = tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses] or [0.0])
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            loss += tf.nn.scale_regularization_loss(model_loss)
            scaled_loss = first.scale_loss(loss) if self.loss_scaled else loss
        gradients = tape.gradient(scaled_loss, self.variables)
        loss_scale = tf.cast(first.scale_loss(1.0), tf.float32) if self.loss_scaled else 1.0
        gradients, grad_norm = self.modify_gradients(gradients, loss_scale)
        start = 0
        for optimizer, variables in self.groups:
            end = start + len(variables)
            optimizer.apply_gradients(zip(gradients[start:end], variables))
            start = end
        self.train_metrics["loss"].update_state(per_example + model_loss)
        for metric in self.task_train_metrics:
            metric.update_state(targets, predictions)
        self.train_metrics["grad_norm"].update_state(grad_norm)
        return tf.cast(tf.math.is_finite(loss), tf.int32)
        # exercise end

    def train_steps(self, iterator, num_steps, read_logs: bool = False):
        """Runs `num_steps` steps (a scalar int32 tensor) in one compiled call; returns the index
        of the step with the first non-finite loss, or -1 (a scalar tensor).

        With `read_logs`, the same call then reads and resets the training metrics, and the next
        `collect_train_logs` returns what it read: at a log step, one compiled call instead of
        two (a call of its own took 0.8 ms between `sequence` chunks on 2 CPU cores).
        """
        first_bad, logs = self._compiled_steps(
            iterator, num_steps, self._read_flags[bool(read_logs)]
        )
        self._chunk_logs = logs if read_logs else None
        return first_bad

    def _train_steps(self, iterator, num_steps, read_logs):
        """`num_steps` steps (of `accumulate_steps` micro-batches each): the index of the step
        with the first non-finite loss, or -1; and the training metrics' values after them,
        reset when `read_logs`."""
        first_bad = tf.constant(-1, tf.int32)
        for index in tf.range(num_steps):
            num_finite = tf.constant(0, tf.int32)
            for micro in range(self.accumulate_steps):  # unrolled: the last one updates
                for accumulator, _ in self.groups:
                    if isinstance(accumulator, GradientAccumulator):
                        accumulator.apply_now = micro == self.accumulate_steps - 1
                finite = self.strategy.run(self._replica_step, args=(next(iterator),))
                num_finite += self.strategy.reduce(tf.distribute.ReduceOp.SUM, finite, axis=None)
            if num_finite < self.num_replicas * self.accumulate_steps:
                first_bad = index
                break
        values = self._train_log_values()
        if read_logs:
            self._reset_train_metrics()  # after the reads: tf.function keeps the program order
        return first_bad, values

    # -- weight averages (optimizer.ema_decay) -----------------------------------------------
    def _swap_model_and_averages(self):
        for optimizer, (_, variables) in zip(self.optimizers, self.groups):
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
            # Keras keeps the averages in the optimizer (so in the checkpoint), one per variable
            # it was built with, in the same order.
            for variable, average in zip(variables, inner._model_variables_moving_average):
                raw = tf.identity(variable)
                variable.assign(average)
                average.assign(raw)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Within the block the model holds the moving averages of its weights (when
        `optimizer.ema_decay` is set; otherwise nothing changes). The swap is exact both ways."""
        if not self.cfg.optimizer.ema_decay:
            yield
            return
        self._swap_averages()
        try:
            yield
        finally:
            self._swap_averages()

    def use_averaged_weights(self) -> None:
        """Puts the moving averages into the model for good (evaluate, export)."""
        if self.cfg.optimizer.ema_decay:
            self._swap_averages()

    # -- evaluation ----------------------------------------------------------------------------
    def _replica_eval_step(self, batch):
        """Updates the eval metrics with one replica's share of a held-out batch.

        A short last batch split over replicas can leave a replica with no example at all
        (7 examples on 2 replicas: 4 and 3; then 1 and 0). Some kernels fail on a zero-size
        batch (oneDNN's Conv2D: "input depth must be evenly divisible by filter depth"), so an
        empty share skips the model.
        """
        inputs, targets = batch

        def update():
            predictions = as_float32(self.model(inputs, training=False))
            self.eval_metrics["loss"].update_state(self.loss_fn(targets, predictions))
            for name, metric in self.eval_metrics.items():
                if name != "loss":
                    metric.update_state(targets, predictions)
            return tf.constant(True)

        size = tf.shape(tf.nest.flatten(targets)[0])[0]
        tf.cond(size > 0, update, lambda: tf.constant(False))

    def _evaluate_batches(self, iterator, num_batches):
        for metric in self.eval_metrics.values():
            metric.reset_state()
        for _ in tf.range(num_batches):
            self.strategy.run(self._replica_eval_step, args=(next(iterator),))
        return tf.stack([tf.cast(m.result(), tf.float32) for m in self.eval_metrics.values()])

    def held_out(self, dataset):
        """An iterator over `dataset` (a source's `eval_dataset`) repeated, and the batches of
        one pass.

        One iterator serves every evaluation of a run: a new iterator per pass cost ~35 ms on 2
        cores, several times the pass itself.
        """
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset.repeat()))
        return iterator, int(dataset.cardinality())

    @property
    def eval_names(self) -> list[str]:
        """What an evaluation logs: `eval_loss` and `eval_<metric>` of each task metric."""
        return [f"eval_{name}" for name in self.eval_metrics]

    def evaluate(self, iterator, num_batches: int) -> dict[str, float]:
        """Held-out loss and metrics over the next `num_batches` batches of `iterator` (one
        pass, from `held_out`; exact over a short last batch). Resetting, the pass and reading
        the results are one compiled call."""
        values = self.evaluate_batches(iterator, tf.constant(num_batches, tf.int32))
        return dict(zip(self.eval_names, values.numpy().tolist()))

    # -- logs ----------------------------------------------------------------------------------
    @property
    def progress_fields(self) -> tuple[str, ...]:
        """What the progress bar shows: the loss and the task's first metric, train and eval."""
        names = ["loss", *(metric.name for metric in self.task_train_metrics[:1])]
        return (*names, *(f"eval_{name}" for name in names))

    def _logged_metrics(self) -> list:
        return list(self.train_metrics.values()) + list(self.model.metrics)

    def _train_log_values(self):
        values = [metric.result() for metric in self._logged_metrics()]
        values.append(tf.convert_to_tensor(self.optimizers[0].learning_rate))
        return tf.stack([tf.cast(value, tf.float32) for value in values])

    def _reset_train_metrics(self):
        for metric in self._logged_metrics():
            metric.reset_state()

    def _read_and_reset_train_metrics(self):
        values = self._train_log_values()
        self._reset_train_metrics()  # after the reads: tf.function keeps the program order
        return values

    def collect_train_logs(self) -> dict[str, float]:
        """Means since the last reset of every train metric and the model's own, and the
        learning rate; then resets the metrics. What the last `train_steps(..., read_logs=True)`
        read, or else one compiled call; one tensor read."""
        names = [metric.name for metric in self._logged_metrics()] + ["learning_rate"]
        values, self._chunk_logs = self._chunk_logs, None
        if values is None:
            values = self._read_train_metrics()
        return dict(zip(names, values.numpy().tolist()))

    def _all_weights_finite(self):
        floats = [v for v in self.model.weights if "float" in str(v.dtype)]
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])

    def weights_finite(self) -> bool:
        return bool(self._weights_finite())

    def weights_digest(self) -> str:
        """A fingerprint of every model weight: equal digests mean bitwise equal models."""
        digest = hashlib.sha256()
        for variable in self.model.weights:
            digest.update(np.asarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]

    @property
    def tracing_count(self) -> int:
        return self._compiled_steps.experimental_get_tracing_count()
