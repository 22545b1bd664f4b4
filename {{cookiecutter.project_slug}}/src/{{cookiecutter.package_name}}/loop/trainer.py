"""The inner loop: a task's models, optimizers and metrics under one strategy, and its steps
compiled into chunks.

Everything is created under `strategy.scope()` and built before the first step (Keras 3
optimizers under MirroredStrategy fail on variables they first see inside a step). The step
itself is the task's (`Task.train_step(batch, loop)`, the reference step unless the task writes
its own; `loop/step.py` says what it is given). `train_steps(iterator, num_steps)` runs
`num_steps` of them in one `tf.function` call, pulling each batch from the iterator inside the
graph (a `tf.range` loop), so Python costs nothing per step; `num_steps` is a tensor, so cadence
boundaries do not retrace.

What a step returns is logged: before the first call the loop traces the step once, without
running it, to learn the names it returns, the optimizers it updates and whether it updates
the task's metrics, and makes a mean for each.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import tensorflow as tf

from ..config import Config
from ..errors import RunError
from ..tasks.base import Task
from .accumulation import GradientAccumulator
from .averages import WeightAverages
from .cluster import Cluster
from .optimizers import make_optimizer, optimizer_settings
from .outputs import TaskLoss, task_metrics
from .step import StepContext, trace_step


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


def _means(names) -> dict:
    return {name: keras.metrics.Mean(name=name) for name in names}


class Trainer:
    """A task's models, optimizers, metrics and compiled train / eval steps under one strategy."""

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
        # TensorFlow's CPU graph rewrite fusing MatMul and BiasAdd has no fast float16 kernel:
        # float16 without a GPU goes without that rewrite.
        cpu_float16 = self.loss_scaled and not tf.config.list_physical_devices("GPU")
        tf.config.optimizer.set_experimental_options({"remapping": not cpu_float16})
        # Unseeded initializers (Keras' defaults) draw the same weights for the same seed.
        keras.utils.set_random_seed(cfg.seed)
        self.batch_spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)),
            (source.example_inputs, source.example_targets),
        )
        with self.strategy.scope():
            self.models = self._build_models(source)
            self.model = task.serving_model(self.models)
            # The task's loss, when it has one, as one callable of (targets, predictions) giving
            # one float32 loss per example (with named outputs, their weighted sum).
            self.loss_fn = None
            if type(task).build_loss is not Task.build_loss:
                self.loss_fn = TaskLoss(
                    task.build_loss(reduction=None), task.loss_weights(), task.name
                )
                if not task.has_own_step():
                    self.loss_fn.check_outputs(self._outputs, source.example_targets, task.name)
            self.optimizer_variables = self._optimizer_variables()
            self.optimizers = {
                name: make_optimizer(cfg, optimizer_settings(cfg, name, rate), self.loss_scaled)
                for name, rate in self._rates.items()
            }
            self.appliers = {}
            for name, optimizer in self.optimizers.items():
                variables = self.optimizer_variables[name]
                optimizer.build(variables)
                self.appliers[name] = (  # each optimizer behind a sum of micro-batch gradients
                    GradientAccumulator(optimizer, variables, self.accumulate_steps)
                    if self.accumulate_steps > 1
                    else optimizer
                )
            self.task_train_metrics = task_metrics(task, self.loss_fn)
            self.task_eval_metrics = task_metrics(task, self.loss_fn)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            train = trace_step(self, task.train_step, self.task_train_metrics)
            evaluation = trace_step(self, task.eval_step, self.task_eval_metrics)
            self._check_updates(train.used["updates"])
            self.train_outputs = _means(train.returned)
            self.grad_norms = _means(dict.fromkeys(train.used["norms"]))
            self.eval_outputs = _means(evaluation.returned)
        logged = list(self.train_outputs.values())
        logged += self.task_train_metrics if train.used["metrics"] else []
        self.train_metrics = {m.name: m for m in logged + list(self.grad_norms.values())}
        eval_metrics = self.task_eval_metrics if evaluation.used["metrics"] else []
        self.eval_metrics = {m.name: m for m in [*self.eval_outputs.values(), *eval_metrics]}
        self._check_names()
        self._train_context = StepContext(self, self.task_train_metrics, self.grad_norms)
        self._eval_context = StepContext(self, self.task_eval_metrics, None)
        self.variables = [v for vs in self.optimizer_variables.values() for v in vs]
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            seeds=[s for model in self.models.values() for s in seed_states(model)],
            **{_model_key(name): model for name, model in self.models.items()},
            **{f"optimizer_{name}": opt for name, opt in self.optimizers.items()},
        )
        self._replica_step = self._task_step
        if cfg.train.jit_compile:
            self._replica_step = tf.function(self._task_step, jit_compile=True)
        self._compiled_chunk = tf.function(self._chunk)
        self._read_flags = (tf.constant(False), tf.constant(True))
        self._chunk_logs = None  # the training metrics read by the last call, when it read them
        self.averages = WeightAverages(self.optimizers, self.optimizer_variables, cfg)
        self.evaluate_batches = tf.function(self._evaluate_batches)
        # Between chunks too, one compiled call instead of an eager op per metric or weight.
        self._read_train_metrics = tf.function(self._read_and_reset_train_metrics)
        self._weights_finite = tf.function(self._all_weights_finite)

    # -- construction --------------------------------------------------------------------------
    def _build_models(self, source) -> dict:
        models = self.task.build_models()
        if not isinstance(models, dict) or not models:
            raise RunError(
                f"task={self.task.name}: build_models returns a dict of named keras.Model"
            )
        self._outputs = None
        if len(models) == 1:  # one model: built by a call on a real batch
            (model,) = models.values()
            per_replica = self.global_batch_size // self.num_replicas
            example = tf.nest.map_structure(lambda a: a[:per_replica], source.example_inputs)
            self._outputs = model(example)
        for name, model in models.items():
            if not model.weights:
                raise RunError(
                    f"task={self.task.name}: model {name!r} has no weights after build_models;"
                    " give it a keras.Input or call model.build(shape) there"
                )
        return models

    def _optimizer_variables(self) -> dict[str, list]:
        head_rate = self.cfg.optimizer.head_learning_rate
        own = type(self.task).optimizer_variables is not Task.optimizer_variables
        if head_rate and own:
            raise RunError(
                f"optimizer.head_learning_rate={head_rate}: task={self.task.name} names its own "
                "optimizers; set task.optimizers.<name>.learning_rate instead"
            )
        if head_rate:  # one optimizer for the body, one for the head
            groups = self.task.variable_groups(self.models["model"])
            self._rates = {"body": None, "head": head_rate}
        else:
            groups = self.task.optimizer_variables(self.models)
            self._rates = dict.fromkeys(groups)
        groups = {name: list(variables) for name, variables in groups.items()}
        unknown = sorted(set(self.cfg.task.optimizers or ()) - set(groups))
        if unknown:
            raise RunError(
                f"task.optimizers.{unknown[0]}: task={self.task.name} has no optimizer "
                f"{unknown[0]}; its optimizers are {', '.join(groups)}"
            )
        return groups

    def _check_updates(self, updates: dict) -> None:
        repeated = {name: count for name, count in updates.items() if count > self.num_replicas}
        if self.accumulate_steps > 1 and repeated:
            name = next(iter(repeated))
            raise RunError(
                f"train.accumulate_steps={self.accumulate_steps}: task={self.task.name}'s "
                f"train_step updates optimizer {name} {repeated[name] // self.num_replicas} "
                "times a step; accumulation needs one update per optimizer per step"
            )

    def _check_names(self) -> None:
        for logged in (list(self.train_metrics) + self._model_metric_names(), self.eval_metrics):
            seen = set()
            for name in logged:
                if name in seen:
                    raise RunError(
                        f"task={self.task.name}: two logged values are named {name!r} (the "
                        "step's returned values, the task's metrics and the gradient norms "
                        "share one namespace); rename one"
                    )
                seen.add(name)

    def apply_configured_learning_rates(self) -> None:
        """Sets each optimizer's rate from the config (a checkpoint restores the old one).

        A schedule holds its rates as constants, not in the checkpoint: built from the config
        of this process, it already has them.
        """
        for name, optimizer in self.optimizers.items():
            settings = optimizer_settings(self.cfg, name, self._rates[name])
            if settings["schedule"] == "constant":
                optimizer.learning_rate = settings["learning_rate"]

    @property
    def group_names(self) -> list[str]:
        return list(self.optimizers)

    # -- the compiled steps ----------------------------------------------------------------------
    def _task_step(self, batch):
        """One replica's step: the task's, its returned values logged; 1 if they are finite."""
        outputs = self.task.train_step(batch, self._train_context)
        return self._record(outputs, self.train_outputs)

    @staticmethod
    def _record(outputs, means):
        finite = []
        for name, mean in means.items():
            value = tf.cast(outputs[name], tf.float32)
            mean.update_state(value)
            finite.append(tf.reduce_all(tf.math.is_finite(value)))
        return tf.cast(tf.reduce_all(finite), tf.int32) if finite else tf.constant(1)

    def train_steps(self, iterator, num_steps, read_logs: bool = False):
        """Runs `num_steps` steps (a scalar int32 tensor) in one compiled call; returns the index
        of the first step that returned a non-finite value, or -1 (a scalar tensor).

        With `read_logs`, the same call then reads and resets the training metrics, and the next
        `collect_train_logs` returns what it read: one compiled call at a log step, not two.
        """
        first_bad, logs = self._compiled_chunk(
            iterator, num_steps, self._read_flags[bool(read_logs)]
        )
        self._chunk_logs = logs if read_logs else None
        return first_bad

    def _chunk(self, iterator, num_steps, read_logs):
        first_bad = tf.constant(-1, tf.int32)
        for index in tf.range(num_steps):
            num_finite = tf.constant(0, tf.int32)
            for micro in range(self.accumulate_steps):  # unrolled: the last one updates
                for applier in self.appliers.values():
                    if isinstance(applier, GradientAccumulator):
                        applier.apply_now = micro == self.accumulate_steps - 1
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
    def averaged_weights(self):
        """A block within which the models hold the moving averages of their weights (when
        `optimizer.ema_decay` is set; otherwise nothing changes). The swap is exact both ways."""
        return self.averages.swapped()

    def use_averaged_weights(self) -> None:
        """Puts the moving averages into the models for good (evaluate, export)."""
        self.averages.use()

    # -- evaluation ----------------------------------------------------------------------------
    def _replica_eval_step(self, batch):
        """The task's evaluation of one replica's share of a held-out batch.

        A short last batch split over replicas can leave a replica with no example at all
        (7 examples on 2 replicas: 4 and 3; then 1 and 0). Some kernels fail on a zero-size
        batch (oneDNN's Conv2D: "input depth must be evenly divisible by filter depth"), so an
        empty share skips the step.
        """

        def update():
            self._record(self.task.eval_step(batch, self._eval_context), self.eval_outputs)
            return tf.constant(True)

        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        tf.cond(size > 0, update, lambda: tf.constant(False))

    def _evaluate_batches(self, iterator, num_batches):
        for metric in self.eval_metrics.values():
            metric.reset_state()
        for _ in tf.range(num_batches):
            self.strategy.run(self._replica_eval_step, args=(next(iterator),))
        return tf.stack([tf.cast(m.result(), tf.float32) for m in self.eval_metrics.values()])

    def held_out(self, dataset):
        """An iterator over `dataset` (a source's `eval_dataset`) repeated, and the batches of
        one pass. One iterator serves every evaluation of a run (a new one per pass costs more
        than a pass over a small split)."""
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset.repeat()))
        return iterator, int(dataset.cardinality())

    @property
    def eval_names(self) -> list[str]:
        """What an evaluation logs: `eval_<name>` of each value the evaluation step returns
        (`eval_loss` for the reference step) and of each task metric it updates."""
        return [f"eval_{name}" for name in self.eval_metrics]

    def evaluate(self, iterator, num_batches: int) -> dict[str, float]:
        """Held-out values over the next `num_batches` batches of `iterator` (one pass, from
        `held_out`; exact over a short last batch). Resetting, the pass and reading the results
        are one compiled call."""
        values = self.evaluate_batches(iterator, tf.constant(num_batches, tf.int32))
        return dict(zip(self.eval_names, values.numpy().tolist()))

    # -- logs ----------------------------------------------------------------------------------
    @property
    def progress_fields(self) -> tuple[str, ...]:
        """What the progress bar shows: the first two logged training values (the loss and the
        task's first metric, for the reference step), and their held-out values, else the first
        held-out value."""
        names = list(self.train_metrics)[:2]
        evaluated = [f"eval_{name}" for name in names if f"eval_{name}" in self.eval_names]
        return (*names, *(evaluated or self.eval_names[:1]))

    def _model_metric_names(self) -> list[str]:
        return [metric.name for metric in self._model_metrics()]

    def _model_metrics(self) -> list:
        return [metric for model in self.models.values() for metric in model.metrics]

    def _logged_metrics(self) -> list:
        return list(self.train_metrics.values()) + self._model_metrics()

    @property
    def _rate_names(self) -> list[str]:
        if len(self.optimizers) == 1:
            return ["learning_rate"]
        return [f"{name}_learning_rate" for name in self.optimizers]

    def _train_log_values(self):
        values = [metric.result() for metric in self._logged_metrics()]
        values += [tf.convert_to_tensor(opt.learning_rate) for opt in self.optimizers.values()]
        return tf.stack([tf.cast(value, tf.float32) for value in values])

    def _reset_train_metrics(self):
        for metric in self._logged_metrics():
            metric.reset_state()

    def _read_and_reset_train_metrics(self):
        values = self._train_log_values()
        self._reset_train_metrics()  # after the reads: tf.function keeps the program order
        return values

    def collect_train_logs(self) -> dict[str, float]:
        """Means since the last reset of every logged training value and of the models' own
        metrics, and the learning rates; then resets them. What the last
        `train_steps(..., read_logs=True)` read, or else one compiled call; one tensor read."""
        names = [metric.name for metric in self._logged_metrics()] + self._rate_names
        values, self._chunk_logs = self._chunk_logs, None
        if values is None:
            values = self._read_train_metrics()
        return dict(zip(names, values.numpy().tolist()))

    def _all_weights_finite(self):
        floats = [v for v in self._weights() if "float" in str(v.dtype)]
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])

    def _weights(self) -> list:
        return [w for model in self.models.values() for w in model.weights]

    def weights_finite(self) -> bool:
        return bool(self._weights_finite())

    def weights_digest(self) -> str:
        """A fingerprint of every model's weights: equal digests mean bitwise equal models."""
        digest = hashlib.sha256()
        for variable in self._weights():
            digest.update(np.asarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]

    @property
    def tracing_count(self) -> int:
        return self._compiled_chunk.experimental_get_tracing_count()


def _model_key(name: str) -> str:
    """A model's name in the checkpoint: `model` for the only model of most tasks."""
    return "model" if name == "model" else f"model_{name}"
