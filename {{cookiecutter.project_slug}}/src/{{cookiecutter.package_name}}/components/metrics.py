"""Custom streaming metric: mean absolute error, exact over batches of any size.

The state is a running sum of per-sample errors and a running count of samples, so the
result is the mean over every sample seen, not the mean of batch means.

>>> metric = StreamingMAE()
>>> metric.update_state([[1.0], [2.0], [3.0]], [[1.0], [2.0], [3.0]])  # errors 0, 0, 0
>>> metric.update_state([[0.0]], [[4.0]])  # error 4
>>> float(metric.result())  # 4 / 4 samples (mean of batch means would be 2)
1.0
"""

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class StreamingMAE(keras.metrics.Metric):
    """Mean absolute error over all samples seen since the last `reset_state`.

    Args:
        name: Name of the metric.
        dtype: Dtype of the state variables and result.

    Call arguments (of `update_state`):
        y_true: Targets, shape `(batch, d)`.
        y_pred: Predictions, same shape.
        sample_weight: Optional per-sample weights, shape `(batch,)`.

    Returns:
        `result()`: a scalar, the (weighted) mean of per-sample MAE.

    Example:

    >>> metric = StreamingMAE()
    >>> metric.update_state([[0.0, 0.0]], [[1.0, 3.0]])
    >>> float(metric.result())
    2.0
    """

    def __init__(self, name="mae", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # exercise begin: metric
        # Exercise `metric` (a streaming metric: `update_state` and `result`): `update_state` casts
        # both inputs to `self.dtype`, takes each sample's MAE (mean over the last axis), weights it
        # (weights of 1 without `sample_weight`) and adds the weighted sum to `self.total` and the
        # sum of weights to `self.count` (`assign_add`); `result` returns ``total / count``, or 0
        # before any update (`ops.divide_no_nan`).
        y_pred = ops.cast(y_pred, self.dtype)
        y_true = ops.cast(y_true, self.dtype)
        per_sample = ops.mean(ops.abs(y_true - y_pred), axis=-1)
        if sample_weight is None:
            weights = ops.ones_like(per_sample)
        else:
            weights = ops.broadcast_to(ops.cast(sample_weight, self.dtype), ops.shape(per_sample))
        self.total.assign_add(ops.sum(per_sample * weights))
        self.count.assign_add(ops.sum(weights))
        # exercise end

    def result(self):
        # exercise begin: metric
        return ops.divide_no_nan(self.total, self.count)
        # exercise end

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class StreamingAccuracy(keras.metrics.Metric):
    """Share of samples whose highest score is the true class, over every sample seen.

    Like `StreamingMAE`, the state is a count of correct samples and a count of samples, so the
    result is exact over batches of any size (a short last batch weighs what it holds).

    Args:
        name: Name of the metric.
        dtype: Dtype of the state variables and result.

    Call arguments (of `update_state`):
        y_true: Integer class ids, shape `(batch,)` or `(batch, 1)`.
        y_pred: Scores (logits or probabilities), shape `(batch, num_classes)`.
        sample_weight: Optional per-sample weights, shape `(batch,)`.

    Returns:
        `result()`: a scalar in [0, 1].

    Example:

    >>> metric = StreamingAccuracy()
    >>> metric.update_state([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # 2 of 3
    >>> metric.update_state([0], [[0.7, 0.3]])  # 1 of 1
    >>> float(metric.result())  # 3 / 4 samples (mean of batch means would be 0.83)
    0.75
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        correct = ops.cast(ops.equal(predicted, y_true), self.dtype)
        if sample_weight is None:
            weights = ops.ones_like(correct)
        else:
            weights = ops.broadcast_to(ops.cast(sample_weight, self.dtype), ops.shape(correct))
        self.correct.assign_add(ops.sum(correct * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ModeCoverage(keras.metrics.Metric):
    """How well points cover known modes (a GAN's samples of a mixture), over every point seen.

    A point is of high quality when it lies within 3 standard deviations of its nearest mode
    (98.9% of a 2-D Gaussian's own draws do). `kind="high_quality"` gives the share of such
    points; `kind="modes"` the number of modes that hold at least a quarter of their fair share
    of all points (a generator that collapses onto a few modes covers only those).

    Args:
        centers: The modes, shape `(num_modes, d)`.
        stddev: Each mode's standard deviation.
        kind: `"modes"` or `"high_quality"`.
        of_targets: Measure the targets (the data's own figure) instead of the predictions.

    >>> metric = ModeCoverage([[0.0, 0.0], [10.0, 0.0]], 1.0, "modes")
    >>> metric.update_state(None, [[0.5, 0.0], [0.0, 1.0], [9.0, 0.0], [5.0, 5.0]])
    >>> int(metric.result()), float(metric.high_quality())
    (2, 0.75)
    """

    def __init__(self, centers, stddev, kind="modes", of_targets=False, name=None, dtype=None):
        super().__init__(name=name or kind, dtype=dtype)
        if kind not in ("modes", "high_quality"):
            raise ValueError(f"kind={kind!r}: must be 'modes' or 'high_quality'")
        self.centers = [list(map(float, center)) for center in centers]
        self.stddev, self.kind, self.of_targets = float(stddev), kind, bool(of_targets)
        num_modes = len(self.centers)
        self.counts = self.add_variable(shape=(num_modes,), initializer="zeros", name="counts")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        points = ops.cast(y_true if self.of_targets else y_pred, "float32")
        centers = ops.convert_to_tensor(self.centers, "float32")
        squared = ops.sum(ops.square(points[:, None, :] - centers[None]), axis=-1)
        close = ops.cast(ops.min(squared, axis=-1) <= (3 * self.stddev) ** 2, "float32")
        nearest = ops.one_hot(ops.argmin(squared, axis=-1), len(self.centers))
        self.counts.assign_add(ops.sum(nearest * close[:, None], axis=0))
        self.total.assign_add(ops.cast(ops.shape(points)[0], "float32"))

    def high_quality(self):
        return ops.divide_no_nan(ops.sum(self.counts), self.total)

    def result(self):
        if self.kind == "high_quality":
            return self.high_quality()
        fair_share = self.total / len(self.centers)
        covered = ops.logical_and(self.counts >= 0.25 * fair_share, self.counts > 0)
        return ops.sum(ops.cast(covered, "float32"))

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))
        self.total.assign(0.0)

    def get_config(self):
        return {
            **super().get_config(),
            "centers": self.centers,
            "stddev": self.stddev,
            "kind": self.kind,
            "of_targets": self.of_targets,
        }
