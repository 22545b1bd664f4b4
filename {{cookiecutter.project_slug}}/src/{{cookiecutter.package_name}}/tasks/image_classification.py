"""Image classification (`task=image_classification`): 8x8 digits, a small conv net, accuracy.

The data is the 1,797 handwritten 8x8 digit images that scikit-learn ships inside its wheel
(`sklearn.datasets.load_digits`: read from the installed package, never downloaded), scaled to
[0, 1], shape `(n, 8, 8, 1)`, with integer labels 0-9 of shape `(n,)`. A seeded permutation
holds out `test_size` of them. Install it with the `digits` extra: `pip install -e '.[digits]'`.
Your own images: `data.path=/path/to/data.npz` with `x_train` `(n, h, w)` or `(n, h, w, c)`
and integer `y_train` `(n,)` in `[0, num_classes)`, and the same for `x_test`, `y_test`.

Labels stay integers end to end: the loss (`SparseCrossEntropy`) and the metric
(`StreamingAccuracy`) take class ids, and the exported model serves `probabilities` and
`class_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import fraction, non_negative, positive
from ..data import Arrays
from ..errors import RunError
from .base import Task, TaskConfig


@dataclass
class ImageClassificationConfig(TaskConfig):
    # Held-out images of the bundled digits (unused with data.path).
    test_size: int = positive(360)  # of the 1,797 digits
    num_classes: int = positive(10)  # class ids 0..num_classes-1
    # The model (models/conv_classifier.py).
    filters: int = positive(16)  # channels of the first Conv2D (the second has twice as many)
    hidden_units: int = positive(64)  # width of the dense layers
    num_blocks: int = non_negative(1)  # residual blocks after the convolutions
    noise_stddev: float = non_negative(0.05)  # Gaussian noise on the inputs, in training only
    l1: float = non_negative(0.0)  # L1 penalty on the kernels
    # The loss (components/losses.py): share of the target spread over all classes.
    label_smoothing: float = fraction(0.0)


class ImageClassificationTask(Task, name="image_classification"):
    """Predicts one of `num_classes` classes per image; reports the exact accuracy."""

    config_class = ImageClassificationConfig
    identity_keys = ("num_classes", "filters", "hidden_units", "num_blocks", "noise_stddev", "l1")
    small_overrides = ("task.filters=4", "task.hidden_units=16", "task.num_blocks=1")
    noise_free_overrides = ("task.noise_stddev=0",)

    def make_arrays(self) -> Arrays:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise RunError(
                f"task={self.name}: its digits ship with scikit-learn, which is not installed; "
                "pip install -e '.[digits]', or give your own images with data.path=<file.npz>"
            ) from None
        images, labels = load_digits(return_X_y=True)
        test_size = self.config.test_size
        if test_size >= len(images):
            raise RunError(
                f"task.test_size={test_size}: the digits hold {len(images)} images; keep some "
                "for training"
            )
        order = np.random.default_rng(self.seed).permutation(len(images))
        x = (images / 16.0).reshape(-1, 8, 8, 1)[order]
        y = labels[order]
        return Arrays(x[test_size:], y[test_size:], x[:test_size], y[:test_size])

    def check_arrays(self, arrays: Arrays, source: str) -> Arrays:
        num_classes = self.config.num_classes
        if num_classes < 2:
            raise RunError(f"task.num_classes={num_classes}: a classifier needs at least 2")
        checked = []
        for name, array in zip(Arrays._fields, arrays):
            array = np.asarray(array)
            if name.startswith("x"):
                array = array.astype(np.float32)
                if array.ndim == 3:
                    array = array[..., None]
                if array.ndim != 4:
                    raise RunError(
                        f"{source}: {name} has shape {array.shape}; expected images "
                        "(n, height, width) or (n, height, width, channels)"
                    )
                if not np.isfinite(array).all():
                    raise RunError(f"{source}: {name} holds NaN or infinite values")
            else:
                if array.ndim == 2 and array.shape[1] == 1:
                    array = array[:, 0]
                if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
                    raise RunError(
                        f"{source}: {name} has shape {array.shape} and dtype {array.dtype}; "
                        "expected integer class ids of shape (n,)"
                    )
                if array.min() < 0 or array.max() >= num_classes:
                    raise RunError(
                        f"{source}: {name} holds class ids {array.min()}..{array.max()}; "
                        f"expected 0..{num_classes - 1} (task.num_classes={num_classes})"
                    )
                array = array.astype(np.int32)
            checked.append(array)
        return Arrays(*checked)

    def build_model(self):
        from ..models import ConvClassifier

        c = self.config
        return ConvClassifier(
            num_classes=c.num_classes,
            filters=c.filters,
            hidden_units=c.hidden_units,
            num_blocks=c.num_blocks,
            noise_stddev=c.noise_stddev,
            l1=c.l1,
            seed=self.seed,
        )

    def build_loss(self, reduction="sum_over_batch_size"):
        from ..components.losses import SparseCrossEntropy

        return SparseCrossEntropy(self.config.label_smoothing, reduction=reduction)

    def build_metrics(self) -> list:
        from ..components.metrics import StreamingAccuracy

        return [StreamingAccuracy(name="accuracy")]

    def variable_groups(self, model) -> dict[str, list]:
        return model.variable_groups()

    def serve(self, model, inputs) -> dict:
        import tensorflow as tf

        logits = model(inputs, training=False)
        return {
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "class_ids": tf.argmax(logits, axis=-1, output_type=tf.int32),
        }
