"""Custom activations: a softplus whose sharpness is set by ``scale``, and a GELU for CPUs.

``scaled_softplus(x, scale) = softplus(scale * x) / scale`` is a smooth ReLU: it tends to
``relu(x)`` as ``scale`` grows and always has slope 1/2 at zero.

``gelu(x) = x * Phi(x)`` is Keras' exact GELU with its gradient written by hand and both computed
in float32 whatever the dtype of ``x``: TensorFlow's CPU kernels compute bfloat16 ``erfc`` one
element at a time (2.3 times its float32 time), and autodiff spends more passes over the
activations than the hand-written gradient does. From `FUSE_MIN_ELEMENTS` elements up (a static
shape), each direction is one XLA-compiled pass over the activations instead of four and seven
TensorFlow kernels.

>>> round(float(scaled_softplus(0.0, scale=2.0)), 4)  # log(2) / 2
0.3466
>>> round(float(ScaledSoftplus(scale=2.0)(0.0)), 4)
0.3466
"""

import math

import keras
import tensorflow as tf
from keras import ops

from ._registry import PACKAGE

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@keras.saving.register_keras_serializable(package=PACKAGE)
def scaled_softplus(x, scale=1.0):
    """Softplus with adjustable sharpness: ``softplus(scale * x) / scale``.

    Args:
        x: Input tensor (any float dtype; the output has the same dtype).
        scale: Positive float; larger values make the curve closer to ReLU.

    Returns:
        A tensor shaped like `x`.

    Example:

    >>> [round(v, 3) for v in ops.convert_to_numpy(scaled_softplus([-10.0, 10.0])).tolist()]
    [0.0, 10.0]
    """
    # exercise begin: activation
    # Exercise `activation` (a custom activation function): convert `x` to a tensor, then return
    # ``softplus(scale * x) / scale`` with `keras.ops`, so the result keeps the dtype of `x`.
    x = ops.convert_to_tensor(x)
    return ops.softplus(x * scale) / scale
    # exercise end


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledSoftplus:
    """Configurable form of `scaled_softplus`, usable wherever Keras takes an activation.

    Args:
        scale: Positive float; larger values make the curve closer to ReLU.

    Example:

    >>> layer = keras.layers.Dense(2, activation=ScaledSoftplus(scale=4.0))
    >>> layer.activation.get_config()
    {'scale': 4.0}
    """

    def __init__(self, scale=1.0):
        if not scale > 0:
            raise ValueError(f"`scale` must be a positive number. Received: scale={scale}")
        self.scale = float(scale)

    def __call__(self, x):
        return scaled_softplus(x, scale=self.scale)

    def get_config(self):
        return {"scale": self.scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package=PACKAGE)
def gelu(x):
    """The exact GELU, ``x * Phi(x)`` (`Phi` the standard normal CDF), as
    `keras.activations.gelu`, with the gradient ``Phi(x) + x * phi(x)`` written by hand.

    Both directions compute in float32 and return the dtype of `x`: CPU builds of TensorFlow
    compute bfloat16 elementwise ops one element at a time, and the hand-written gradient
    makes fewer passes over the activations than autodiff's (docs/performance.md).

    Args:
        x: Float tensor (float32, bfloat16 or float16).

    Returns:
        A tensor shaped like `x`, of its dtype.

    Example:

    >>> [round(v, 4) for v in ops.convert_to_numpy(gelu(ops.array([-1.0, 0.0, 1.0]))).tolist()]
    [-0.1587, 0.0, 0.8413]
    """
    x = ops.convert_to_tensor(x)
    if (x.shape.num_elements() or 0) >= FUSE_MIN_ELEMENTS and _in_eager_runtime():
        return _gelu_fused(x)
    return _gelu_float32(x)


# Below this many elements an XLA call costs more than the kernels it replaces; from about 2**16
# up one fused pass beats them, forward and backward. 2**18 keeps a margin: the shipped tasks at
# their sizes stay below and keep the kernels.
FUSE_MIN_ELEMENTS = 2**18


def _in_eager_runtime():
    """False in a TF1-style graph (the thread choice sizes the model in one before TensorFlow's
    runtime starts, and tracing a compiled function would start it)."""
    return tf.compat.v1.executing_eagerly_outside_functions()


@ops.custom_gradient
def _gelu_float32(x):
    wide = ops.cast(x, "float32")
    cdf = _normal_cdf(wide)

    def gradient(*args, upstream=None):  # Keras' signature: positional on TensorFlow
        upstream = args[0] if upstream is None else upstream
        return ops.cast(ops.cast(upstream, "float32") * _gelu_slope(wide, cdf), x.dtype)

    return ops.cast(wide * cdf, x.dtype), gradient


@tf.custom_gradient
def _gelu_fused(x):
    def gradient(upstream):
        return _gelu_gradient_xla(x, upstream)

    return _gelu_xla(x), gradient


@tf.function(jit_compile=True)
def _gelu_xla(x):
    wide = tf.cast(x, tf.float32)
    return tf.cast(wide * _normal_cdf(wide), x.dtype)


@tf.function(jit_compile=True)
def _gelu_gradient_xla(x, upstream):
    wide = tf.cast(x, tf.float32)
    slope = _gelu_slope(wide, _normal_cdf(wide))
    return tf.cast(tf.cast(upstream, tf.float32) * slope, x.dtype)


def _gelu_slope(x, cdf):
    """``Phi(x) + x * phi(x)``, the derivative of ``x * Phi(x)``."""
    return cdf + x * (ops.exp(ops.square(x) * -0.5) * _INV_SQRT_2PI)


def _normal_cdf(x):
    """``Phi(x)`` through `erfc`, as TensorFlow's own GELU: it keeps its relative precision in the
    left tail, where ``1 + erf`` cancels (gelu(-6) came out 0 instead of -5.9e-9). TensorFlow's,
    as Keras 3.10 has no `ops.erfc`."""
    return 0.5 * tf.math.erfc(x * -_SQRT_HALF)
