"""Custom initializer: Glorot (Xavier) normal with an optional gain.

The kernel is drawn from ``N(0, gain**2 * 2 / (fan_in + fan_out))``, so the variance of
activations stays roughly constant from layer to layer.

>>> kernel = GlorotNormalGain(gain=2.0, seed=0)((400, 400))
>>> round(float(keras.ops.std(kernel)), 1)  # 2 * sqrt(2 / 800)
0.1
"""

import math
import random

import keras

from ._registry import PACKAGE


def _glorot_stddev(shape, gain):
    fan_in = shape[-2] if len(shape) >= 2 else shape[-1]
    fan_out = shape[-1]
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return gain * math.sqrt(2.0 / ((fan_in + fan_out) * receptive_field))


@keras.saving.register_keras_serializable(package=PACKAGE)
def glorot_normal_gain(shape, dtype=None):
    """Glorot normal initializer as a plain function (gain 1, unseeded).

    Args:
        shape: Shape of the tensor to create, e.g. `(fan_in, fan_out)`.
        dtype: Float dtype of the result; defaults to `keras.config.floatx()`.

    Returns:
        A tensor of normal samples with stddev `sqrt(2 / (fan_in + fan_out))`.

    Example:

    >>> tuple(glorot_normal_gain((3, 5)).shape)
    (3, 5)
    """
    # exercise begin: initializer
    # Exercise `initializer` (a custom initializer; `GlorotNormalGain.__call__` too): return
    # `keras.random.normal` samples of `shape` and `dtype` whose stddev is `_glorot_stddev(shape,
    # gain)`, with gain 1 here.
    return keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0), dtype=dtype)
    # exercise end


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlorotNormalGain(keras.initializers.Initializer):
    """Glorot normal initializer with a gain and a seed.

    Like Keras' own initializers, an instance returns the same values at every call
    (an unseeded one draws its seed once, from Python's `random`, which
    `keras.utils.set_random_seed` seeds).

    Args:
        gain: Positive float multiplying the standard deviation.
        seed: Optional integer for reproducible values.

    Example:

    >>> init = GlorotNormalGain(gain=1.0, seed=1)
    >>> bool(keras.ops.all(init((2, 2)) == init((2, 2))))
    True
    """

    def __init__(self, gain=1.0, seed=None):
        if not gain > 0:
            raise ValueError(f"`gain` must be a positive number. Received: gain={gain}")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed}")
        self.gain = float(gain)
        self.seed = seed
        self._draw_seed = seed if seed is not None else random.randint(1, 10**9)

    def __call__(self, shape, dtype=None):
        # exercise begin: initializer
        # Exercise `initializer`, second part: `__call__` draws like `glorot_normal_gain`, with
        # `self.gain` and `seed=self._draw_seed`, so that every call returns the same values.
        stddev = _glorot_stddev(shape, self.gain)
        return keras.random.normal(shape, stddev=stddev, dtype=dtype, seed=self._draw_seed)
        # exercise end

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}
