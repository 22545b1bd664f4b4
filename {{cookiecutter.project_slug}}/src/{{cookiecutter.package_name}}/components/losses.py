"""Custom loss: Huber, quadratic for small errors and linear for large ones.

Per element, with ``e = y_true - y_pred`` and threshold ``t``: ``e**2 / 2`` if ``|e| < t``,
else ``t * |e| - t**2 / 2``; then the mean over the last axis gives one loss per sample.

>>> float(huber([[0.0, 0.0]], [[0.5, 3.0]])[0])  # (0.125 + 2.5) / 2
1.3125
>>> float(HuberLoss(threshold=1.0)([[0.0, 0.0]], [[0.5, 3.0]]))
1.3125
"""

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def huber(y_true, y_pred, threshold=1.0):
    """Huber loss per sample (mean over the last axis).

    Args:
        y_true: Targets, shape `(batch, ..., d)`.
        y_pred: Predictions, same shape as `y_true`.
        threshold: Positive float where the loss switches from quadratic to linear.

    Returns:
        Per-sample losses, shape `(batch, ...)`.

    Exercise `loss` (a custom loss function; `HuberLoss.call` calls it): convert `y_pred` to a
    tensor and cast `y_true` to its dtype; with ``e = y_true - y_pred`` take ``0.5 * e**2`` where
    ``|e| < threshold`` and ``threshold * |e| - 0.5 * threshold**2`` elsewhere (`ops.where`),
    then the mean over the last axis.

    Example:

    >>> ops.convert_to_numpy(huber([[1.0], [1.0]], [[1.5], [4.0]], threshold=2.0)).tolist()
    [0.125, 4.0]
    """
    # exercise begin: loss
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    error = y_true - y_pred
    abs_error = ops.abs(error)
    squared = 0.5 * ops.square(error)
    linear = threshold * abs_error - 0.5 * threshold**2
    return ops.mean(ops.where(abs_error < threshold, squared, linear), axis=-1)
    # exercise end


@keras.saving.register_keras_serializable(package=PACKAGE)
class HuberLoss(keras.losses.Loss):
    """Huber loss as a `keras.losses.Loss`.

    Args:
        threshold: Positive float where the loss switches from quadratic to linear.
        **kwargs: `name`, `reduction` (`None` returns per-sample losses, which a custom
            distributed loop averages over the global batch itself) and `dtype`.

    Call arguments:
        y_true: Targets, shape `(batch, d)`.
        y_pred: Predictions, same shape.
        sample_weight: Optional per-sample weights.

    Returns:
        A scalar, or per-sample losses of shape `(batch,)` when `reduction=None`.

    Example:

    >>> loss = HuberLoss(threshold=1.0, reduction=None)
    >>> ops.convert_to_numpy(loss([[0.0], [0.0]], [[0.5], [3.0]])).tolist()
    [0.125, 2.5]
    """

    def __init__(self, threshold=1.0, name="huber_loss", **kwargs):
        if not threshold > 0:
            raise ValueError(
                f"`threshold` must be a positive number. Received: threshold={threshold}"
            )
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, threshold=self.threshold)

    def get_config(self):
        base_config = super().get_config()
        config = {"threshold": self.threshold}
        return {**base_config, **config}
