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

    Example:

    >>> ops.convert_to_numpy(huber([[1.0], [1.0]], [[1.5], [4.0]], threshold=2.0)).tolist()
    [0.125, 4.0]
    """
    # exercise begin: loss
    # Exercise `loss` (a custom loss function; `HuberLoss.call` calls it): convert `y_pred` to a
    # tensor and cast `y_true` to its dtype (never the reverse: integer targets would truncate the
    # predictions); with ``e = y_true - y_pred`` take ``0.5 * e**2`` where ``|e| < threshold`` and
    # ``threshold * |e| - 0.5 * threshold**2`` elsewhere (`ops.where`), then the mean over the last
    # axis.
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


@keras.saving.register_keras_serializable(package=PACKAGE)
def sparse_cross_entropy(y_true, logits, label_smoothing=0.0):
    """Cross-entropy of integer class ids against logits, per sample.

    With ``K`` classes the target distribution puts ``1 - label_smoothing + label_smoothing / K``
    on the true class and ``label_smoothing / K`` on each other class; the loss is
    ``-sum(target * log_softmax(logits))`` over the classes. Computed in float32 whatever the
    logits' dtype, from `log_softmax` (never `log(softmax)`, which is -inf once a probability
    underflows).

    Args:
        y_true: Integer class ids, shape `(batch,)` or `(batch, 1)`.
        logits: Unnormalized scores, shape `(batch, num_classes)`.
        label_smoothing: Float in `[0, 1)`.

    Returns:
        Per-sample losses, shape `(batch,)`.

    Example:

    >>> round(float(sparse_cross_entropy([0], [[0.0, 0.0]])[0]), 4)  # log 2
    0.6931
    """
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    num_classes = ops.shape(logits)[-1]
    y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    target = ops.one_hot(y_true, num_classes, dtype="float32")
    target = target * (1.0 - label_smoothing) + label_smoothing / ops.cast(num_classes, "float32")
    return -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy of integer class ids against logits, with label smoothing.

    Args:
        label_smoothing: Float in `[0, 1)`: the share of the target moved from the true class
            to a uniform distribution over all classes.
        **kwargs: `name`, `reduction` (`None` returns per-sample losses) and `dtype`.

    Call arguments:
        y_true: Integer class ids, shape `(batch,)` or `(batch, 1)`.
        y_pred: Logits, shape `(batch, num_classes)`.
        sample_weight: Optional per-sample weights.

    Returns:
        A scalar, or per-sample losses of shape `(batch,)` when `reduction=None`.

    Example:

    >>> loss = SparseCrossEntropy(reduction=None)
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(loss([1, 0], [[0.0, 0.0], [9.0, 0.0]]))]
    [0.6931, 0.0001]
    """

    def __init__(self, label_smoothing=0.0, name="sparse_cross_entropy", **kwargs):
        if not 0 <= label_smoothing < 1:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing}"
            )
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return sparse_cross_entropy(y_true, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        base_config = super().get_config()
        config = {"label_smoothing": self.label_smoothing}
        return {**base_config, **config}
