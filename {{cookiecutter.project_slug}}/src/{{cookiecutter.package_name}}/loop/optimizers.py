"""The optimizers of `optimizer.name`; Adam and AdamW update each variable in one fused kernel.

Keras 3's Adam spends about a dozen ops on each variable at each step (casts, two powers, the
two moment updates, the step). TensorFlow's `ResourceApplyAdam` computes the same update in one
kernel: `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`, `m += (g - m) * (1 - beta_1)`,
`v += (g^2 - v) * (1 - beta_2)`, `w -= alpha * m / (sqrt(v) + epsilon)`, Keras' own formula
(epsilon outside the square root). One op per variable instead of a dozen: on small models
the ops' dispatch is much of a step, on wide ones the passes over the weights
(docs/performance.md).

The moments are Keras' own slot variables, so a checkpoint holds what `keras.optimizers.Adam`
holds and restores in either. Weight decay (AdamW), moving averages (`ema_decay`) and loss
scaling stay Keras' own code around the update. AMSGrad, sparse gradients and variables
mirrored over several replicas take Keras' update unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _handle(variable):
    """The resource handle of a `tf.Variable` or of the one a Keras variable holds."""
    return variable.handle if hasattr(variable, "handle") else variable.value.handle


class FusedAdamUpdate:
    """Replaces Adam's per-variable `update_step` with TensorFlow's fused kernel."""

    _step_scalars = None  # {dtype: the kernel's scalar inputs}, within one `apply`

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The step's scalars (the two bias corrections' powers, the casts) once per dtype for
        # all variables, not once per variable: per variable, they were two more reads of
        # `iterations` and two more powers in every step's graph.
        self._step_scalars = {}
        try:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scalars = None

    def _scalars(self, dtype, learning_rate) -> dict:
        scalars = (self._step_scalars or {}).get(dtype)
        if scalars is None:
            step = tf.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            scalars = {
                "beta1_power": tf.pow(beta_1, step),
                "beta2_power": tf.pow(beta_2, step),
                "lr": tf.cast(learning_rate, dtype),
                "beta1": beta_1,
                "beta2": beta_2,
                "epsilon": tf.cast(self.epsilon, dtype),
            }
            if self._step_scalars is not None:
                self._step_scalars[dtype] = scalars
        return scalars

    def update_step(self, gradient, variable, learning_rate):
        strategy = tf.distribute.get_strategy()
        if (
            self.amsgrad
            or isinstance(gradient, tf.IndexedSlices)
            or strategy.num_replicas_in_sync > 1
        ):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            **self._scalars(dtype, learning_rate),
        )


class Adam(FusedAdamUpdate, keras.optimizers.Adam):
    """`keras.optimizers.Adam`, each variable's update one fused kernel."""


class AdamW(FusedAdamUpdate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, each variable's update one fused kernel (decay as Keras)."""


# Keras' own classes, as a researcher's `model.fit` script uses them (`bench`).
KERAS_OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
# What the training command builds for `optimizer.name`: the same, Adam and AdamW fused.
OPTIMIZER_CLASSES = {**KERAS_OPTIMIZER_CLASSES, "adam": Adam, "adamw": AdamW}


def optimizer_settings(cfg, name: str, rate: float | None = None) -> dict:
    """The settings of the optimizer `name`: `optimizer.*`, then `task.optimizers.<name>.*`
    where set; `rate` (the head's) before the task's own."""
    settings = cfg.optimizer
    resolved = {
        "name": settings.name,
        "learning_rate": rate or settings.learning_rate,
        "schedule": settings.schedule,
        "beta_1": None,
        "beta_2": None,
    }
    own = cfg.task.optimizers.get(name) if cfg.task.optimizers else None
    if own is not None:
        resolved.update({key: value for key, value in vars(own).items() if value is not None})
    return resolved


def make_optimizer(cfg, settings: dict, loss_scaled: bool) -> keras.optimizers.Optimizer:
    """A fresh optimizer of `settings` (`optimizer_settings`): its schedule, moving average of
    the weights (`optimizer.ema_decay`) and, under `mixed_float16`, loss scaling."""
    from ..components.schedules import WarmupCosine

    learning_rate = settings["learning_rate"]
    if settings["schedule"] == "warmup_cosine":  # a function of the optimizer's iterations
        learning_rate = WarmupCosine(
            learning_rate,
            decay_steps=cfg.optimizer.decay_steps or cfg.train.steps,
            warmup_steps=cfg.optimizer.warmup_steps,
            final=cfg.optimizer.min_learning_rate,
        )
    options = {"learning_rate": learning_rate}
    if cfg.optimizer.ema_decay:
        options.update(use_ema=True, ema_momentum=cfg.optimizer.ema_decay)
    betas = {}
    if settings["name"] in ("adam", "adamw"):  # the others have no moment decays
        betas = {key: settings[key] for key in ("beta_1", "beta_2") if settings[key] is not None}
    optimizer = OPTIMIZER_CLASSES[settings["name"]](**options, **betas)
    if loss_scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
