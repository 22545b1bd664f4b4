"""A task's losses and metrics as the loop uses them, for one output or several named ones.

A task with one output gives one loss and a list of metrics of `(targets, predictions)`. A task
with named outputs (a model returning a dict, targets in a dict with the same keys) gives a dict
of losses with their weights (`Task.loss_weights`, Keras' convention) and a dict of metric lists
per output: the objective is the weighted sum of the per-output losses, and each output's own
loss and metrics are logged under its name (`<output>_loss`, `<output>_<metric>`), so the best
checkpoint, sweeps and plots can follow any of them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..errors import RunError


def as_float32(predictions):
    """Every prediction in float32 (a mixed-precision model may compute in 16 bits)."""
    return tf.nest.map_structure(lambda tensor: tf.cast(tensor, tf.float32), predictions)


class TaskLoss:
    """The per-example objective of `(targets, predictions)`: the predictions cast to float32,
    then the task's loss, or the weighted sum of its per-output losses.

    Args:
        losses: The task's `build_loss(reduction=None)`: one loss, or a dict of them per output.
        weights: `{output: weight}` for a dict of losses (1 for an output not listed).
        task_name: For errors.
    """

    def __init__(self, losses, weights: dict, task_name: str):
        self.losses = losses
        self.outputs = sorted(losses) if isinstance(losses, dict) else None
        unknown = sorted(set(weights) - set(self.outputs or ()))
        if unknown:
            raise RunError(
                f"task={task_name}: loss_weights names {unknown}, which have no loss; the "
                f"losses are for {self.outputs or 'a single output'}"
            )
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.outputs or ()}

    def __call__(self, targets, predictions):
        predictions = as_float32(predictions)
        if self.outputs is None:
            return self.losses(targets, predictions)
        return tf.add_n(
            [
                self.weights[name] * self.losses[name](targets[name], predictions[name])
                for name in self.outputs
            ]
        )

    def check_outputs(self, predictions, targets, task_name: str) -> None:
        """Raises `RunError` in one line when the model's outputs or the targets do not match
        the losses (a dict of losses needs dicts with the same names)."""
        if self.outputs is None:
            if isinstance(predictions, dict):
                raise RunError(
                    f"task={task_name}: the model returns named outputs {sorted(predictions)} "
                    "but build_loss returns one loss; return a dict of losses, one per output"
                )
            return
        for what, nest in (("the model returns", predictions), ("the targets hold", targets)):
            names = sorted(nest) if isinstance(nest, dict) else "one unnamed tensor"
            if names != self.outputs:
                raise RunError(
                    f"task={task_name}: build_loss names outputs {self.outputs} but {what} "
                    f"{names}; they must name the same outputs"
                )


class OutputMetric(keras.metrics.Metric):
    """A metric of one named output, named `<output>_<metric>`: `update_state(targets,
    predictions)` passes it `targets[output]` and `predictions[output]`."""

    def __init__(self, metric, output: str):
        super().__init__(name=f"{output}_{metric.name}")
        self.metric, self.output = metric, output

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.metric.update_state(y_true[self.output], y_pred[self.output], sample_weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()


class OutputLoss(keras.metrics.Mean):
    """The mean per-example loss of one named output (unweighted), named `<output>_loss`."""

    def __init__(self, loss, output: str):
        super().__init__(name=f"{output}_loss")
        self.loss, self.output = loss, output

    def update_state(self, y_true, y_pred, sample_weight=None):
        prediction = tf.cast(y_pred[self.output], tf.float32)
        super().update_state(self.loss(y_true[self.output], prediction), sample_weight)


def task_metrics(task, task_loss: TaskLoss | None) -> list:
    """Fresh metrics of `(targets, predictions)` for the loop: the task's own (per output, named
    after it, with named outputs), then each output's loss."""
    metrics = task.build_metrics()
    if (task_loss is None or task_loss.outputs is None) and not isinstance(metrics, dict):
        return list(metrics)
    if not isinstance(metrics, dict):
        raise RunError(
            f"task={task.name}: with named outputs, build_metrics returns a dict "
            "{output: [metrics]}, not a list"
        )
    if task_loss is None:
        raise RunError(f"task={task.name}: metrics per named output need Task.build_loss")
    unknown = sorted(set(metrics) - set(task_loss.outputs or ()))
    if unknown:
        raise RunError(
            f"task={task.name}: build_metrics names outputs {unknown} that build_loss does "
            f"not ({task_loss.outputs})"
        )
    wrapped = [OutputMetric(m, output) for output in sorted(metrics) for m in metrics[output]]
    return wrapped + [OutputLoss(task_loss.losses[name], name) for name in task_loss.outputs]
