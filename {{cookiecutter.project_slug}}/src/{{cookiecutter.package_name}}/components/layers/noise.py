"""Custom regularization layer: additive Gaussian noise during training only.

>>> layer = GaussianNoise(0.1, seed=0)
>>> x = ops.zeros((2, 3))
>>> bool(ops.all(layer(x) == x))  # inference: identity
True
>>> bool(ops.any(layer(x, training=True) != x))
True
"""

import keras
from keras import ops

from .._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianNoise(keras.layers.Layer):
    """Adds zero-mean Gaussian noise when `training=True`; identity otherwise.

    The noise comes from `self.seed_generator`, a `keras.random.SeedGenerator` whose state
    advances at each training call (a loop that resumes bitwise has to checkpoint it).

    Args:
        stddev: Non-negative float, standard deviation of the noise.
        seed: Optional integer seed for the noise.
        **kwargs: Base layer arguments, e.g. `name` and `dtype`.

    Call arguments:
        inputs: Tensor of any shape.
        training: Python boolean, whether to add noise.

    Returns:
        Tensor of the same shape and dtype as `inputs`.

    Example:

    >>> tuple(GaussianNoise(1.0)(ops.ones((2, 5)), training=True).shape)
    (2, 5)
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not stddev >= 0:
            raise ValueError(f"`stddev` must be non-negative. Received: stddev={stddev}")
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if training and self.stddev > 0:
            noise = keras.random.normal(
                ops.shape(inputs),
                stddev=self.stddev,
                dtype=self.compute_dtype,
                seed=self.seed_generator,
            )
            return inputs + noise
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        config = {"stddev": self.stddev, "seed": self.seed}
        return {**base_config, **config}
