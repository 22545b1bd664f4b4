"""Custom regularization layer: additive Gaussian noise during training only.

>>> layer = GaussianNoise(0.1, seed=0)
>>> x = ops.zeros((2, 3))
>>> bool(ops.all(layer(x) == x))  # inference: identity
True
>>> bool(ops.any(layer(x, training=True) != x))
True
"""

import math

import keras
from keras import ops

from .._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianNoise(keras.layers.Layer):
    """Adds zero-mean Gaussian noise when `training=True`; identity otherwise.

    The noise comes from `self.seed_generator`, a `keras.random.SeedGenerator` whose state
    advances at each training call (a loop that resumes bitwise has to checkpoint it). For a
    shape known when traced it is `standard_normal`'s (Box-Muller, computed in float32, half
    the time of TensorFlow's normal kernel on CPUs); otherwise `keras.random.normal`'s.

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
            shape = ops.shape(inputs)
            if all(isinstance(size, int) for size in shape):
                noise = standard_normal(shape, self.seed_generator) * self.stddev
                return inputs + ops.cast(noise, self.compute_dtype)
            noise = keras.random.normal(  # a shape known only when run: Keras' generator
                shape, stddev=self.stddev, dtype=self.compute_dtype, seed=self.seed_generator
            )
            return inputs + noise
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        config = {"stddev": self.stddev, "seed": self.seed}
        return {**base_config, **config}


def standard_normal(shape, seed):
    """Float32 standard normal values by the Box-Muller transform of one uniform draw from
    `seed` (a `keras.random.SeedGenerator`, advanced once): ``r = sqrt(-2 log u1)`` gives
    ``r cos(2 pi u2)`` and ``r sin(2 pi u2)``, two independent normals a pair.

    TensorFlow's normal kernel computes each value on its own; one uniform draw and its
    vectorized transform take about half its time on large tensors (docs/performance.md).

    Args:
        shape: Tuple of Python integers.
        seed: A `keras.random.SeedGenerator`.

    Returns:
        A float32 tensor of `shape`.
    """
    count = math.prod(shape)
    pairs = (count + 1) // 2
    uniform = keras.random.uniform((2, pairs), dtype="float32", seed=seed)
    radius = ops.sqrt(-2.0 * ops.log(1.0 - uniform[0]))  # 1 - u in (0, 1]: a finite log
    angle = (2.0 * math.pi) * uniform[1]
    values = ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)])
    if count % 2:  # the last pair's sine is not needed
        values = values[:count]
    return ops.reshape(values, shape)
