"""What a task's step is given (`Task.train_step(batch, loop)`, `Task.eval_step(batch, loop)`).

A step runs on one replica, on its share of the global batch, inside the loop's compiled call.
`StepContext` holds what it works on (the models and optimizers by name, the task's metrics)
and the few things a step must get right under a strategy and a precision policy, so that a
step of one's own (a GAN's, a distillation's) keeps every promise of the reference step:

* `compute_average_loss(per_example)`: the mean over the GLOBAL batch (each replica's share; the
  optimizer sums the replicas' gradients), not the replica's own mean, which would count the
  gradient once per replica;
* `scale_regularization_loss(loss)`: a loss of the model itself (`model.losses`), divided by
  the replica count, which would otherwise count once per replica;
* `apply_gradients(tape, loss, optimizer)`: differentiates `loss` with respect to the variables
  of the optimizer(s), under `mixed_float16` scaled by each optimizer's loss scale (and unscaled
  by it, a non-finite step skipped), clipped to `train.clip_norm` by the norm of the replicas'
  summed gradient, that norm logged (`grad_norm`, or `<optimizer>_grad_norm`), then applied
  (behind a gradient accumulator with `train.accumulate_steps`).

Return per-example values or one value per replica: the loop logs the mean of each since the
last log (and `eval_<name>` of an evaluation step, over the held-out split), and stops the run,
before any checkpoint, at the first step that returns a non-finite value.
"""

from __future__ import annotations

import tensorflow as tf

from ..errors import RunError


class StepContext:
    """The models, optimizers and metrics of a step, and the loop's helpers for it.

    Attributes:
        models: The task's models by name (`Task.build_models`).
        optimizers: Its optimizers by name (`Task.optimizer_variables`), Keras optimizers
            (`LossScaleOptimizer` under `mixed_float16`): read their `learning_rate` or
            `iterations`, apply through `apply_gradients`.
        variables: The variables each optimizer updates, by name.
        metrics: The task's metrics (`Task.build_metrics`), fresh for training and for
            evaluation; a step updates those it can.
        num_replicas, global_batch_size: The strategy's replicas, and the examples of one step
            over all of them (of one micro-batch with accumulation).
    """

    def __init__(self, trainer, metrics, logged_norms: dict | None):
        self._trainer = trainer
        self.models = trainer.models
        self.optimizers = trainer.optimizers
        self.variables = trainer.optimizer_variables
        self._metrics = metrics
        self.num_replicas = trainer.num_replicas
        self.global_batch_size = trainer.global_batch_size
        self.loss_scaled = trainer.loss_scaled
        self._norms = logged_norms  # {name: Mean} of the gradient norms (training only)
        self.used = {"metrics": False, "norms": [], "updates": {}}  # what the step touched

    # -- what a step reads ------------------------------------------------------------------------
    @property
    def metrics(self) -> list:
        self.used["metrics"] = True
        return self._metrics

    def loss(self, targets, predictions):
        """The task's loss per example (`Task.build_loss`; with named outputs the weighted sum
        of each output's), predictions cast to float32."""
        if self._trainer.loss_fn is None:
            raise RunError(f"task={self._trainer.task.name}: loop.loss needs Task.build_loss")
        return self._trainer.loss_fn(targets, predictions)

    # -- what a step must get right --------------------------------------------------------------
    def compute_average_loss(self, per_example):
        """The mean of `per_example` (float32) over the global batch: this replica's share."""
        per_example = tf.cast(per_example, tf.float32)
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    @staticmethod
    def model_losses(*models):
        """The sum of the models' own losses (`add_loss`, regularizers) in float32; 0 if none."""
        losses = [tf.cast(x, tf.float32) for model in models for x in model.losses]
        return tf.add_n(losses) if losses else tf.constant(0.0)

    @staticmethod
    def scale_regularization_loss(loss):
        """A loss counted once per batch (not per example), divided among the replicas."""
        return tf.nn.scale_regularization_loss(tf.cast(loss, tf.float32))

    def apply_gradients(self, tape, loss, optimizer: str | list[str] | None = None):
        """Differentiates `loss` (this replica's share, from `compute_average_loss`) on `tape`
        with respect to the variables of `optimizer` (a name, several, or None: every
        optimizer), clips, logs the norm and updates; returns the unclipped gradient norm (of
        the global batch's gradient, unscaled)."""
        names = self._names(optimizer)
        key = (
            "grad_norm"
            if optimizer is None or len(self.optimizers) == 1
            else (f"{'_'.join(names)}_grad_norm")
        )
        self.used["norms"].append(key)
        for name in names:
            self.used["updates"][name] = self.used["updates"].get(name, 0) + 1
        trainer = self._trainer
        optimizers = [self.optimizers[name] for name in names]
        variables = [v for name in names for v in self.variables[name]]
        scales = [1.0] * len(names)
        if self.loss_scaled:  # each optimizer's own (dynamic) loss scale
            scales = [tf.cast(o.scale_loss(1.0), tf.float32) for o in optimizers]
        # Scaling the loss is scaling the gradient the tape starts from: no op to record.
        loss = tf.cast(loss, tf.float32)
        gradients = tape.gradient(loss, variables, output_gradients=scales[0] * tf.ones_like(loss))
        missing = [v.path for v, g in zip(variables, gradients) if g is None]
        if missing:
            raise RunError(
                f"task={trainer.task.name}: the loss given to apply_gradients for "
                f"{'+'.join(names)} does not depend on {missing[0]} (and {len(missing) - 1} more);"
                " compute it inside the tape, or leave those variables to another optimizer"
            )
        gradients, norm = self._clip(gradients, scales[0])
        if self._norms is not None:  # a step loss scaling skips (non-finite) is not logged
            finite = tf.math.is_finite(norm)
            weight = tf.cast(finite, tf.float32)
            self._norms[key].update_state(tf.where(finite, norm, 0.0), sample_weight=weight)
        start = 0
        for name, scale in zip(names, scales):
            end = start + len(self.variables[name])
            share = gradients[start:end]
            if scale is not scales[0]:  # each optimizer unscales by its own loss scale
                share = [g * (scale / scales[0]) for g in share]
            trainer.appliers[name].apply_gradients(zip(share, self.variables[name]))
            start = end
        return norm

    def _clip(self, gradients, loss_scale):
        """Clips to `train.clip_norm` by the norm of the replicas' summed (global batch)
        gradient, so the update and the logged norm are those of any replica count."""
        context = tf.distribute.get_replica_context()
        summed = gradients
        if context is not None and context.num_replicas_in_sync > 1:
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        norm = tf.linalg.global_norm(summed) / loss_scale
        clip_norm = self._trainer.cfg.train.clip_norm
        if clip_norm:
            gradients, _ = tf.clip_by_global_norm(
                gradients, clip_norm * loss_scale, use_norm=norm * loss_scale
            )
        return gradients, norm

    def _names(self, optimizer) -> list[str]:
        names = (
            list(self.optimizers)
            if optimizer is None
            else ([optimizer] if isinstance(optimizer, str) else list(optimizer))
        )
        unknown = [name for name in names if name not in self.optimizers]
        if unknown:
            raise RunError(
                f"task={self._trainer.task.name}: apply_gradients(optimizer={unknown[0]!r}): no "
                f"such optimizer; Task.optimizer_variables names {', '.join(self.optimizers)}"
            )
        return names


def trace_step(trainer, step_fn, metrics) -> StepContext:
    """Traces `step_fn` (a task's `train_step` or `eval_step`) on every replica without running
    it; returns its context, which holds what the step touched (`used`) and the names of what it
    returns (`returned`): the loop makes a mean for each before the real call is traced."""
    context = StepContext(trainer, metrics, None)
    context.returned = []

    def replica(batch):
        outputs = step_fn(batch, context)
        if not isinstance(outputs, dict) or not all(isinstance(k, str) for k in outputs):
            raise RunError(
                f"task={trainer.task.name}: {step_fn.__name__} returns "
                f"{type(outputs).__name__}; return a dict of named values to log, e.g. "
                "{'loss': per_example}"
            )
        context.returned[:] = list(outputs)
        return tf.constant(0)

    traced = tf.function(lambda batch: trainer.strategy.run(replica, args=(batch,)))
    traced.get_concrete_function(trainer.batch_spec)
    return context
