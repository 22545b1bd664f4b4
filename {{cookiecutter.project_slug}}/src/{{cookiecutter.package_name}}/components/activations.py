"""Custom activation: a softplus whose sharpness is set by ``scale``.

``scaled_softplus(x, scale) = softplus(scale * x) / scale`` is a smooth ReLU: it tends to
``relu(x)`` as ``scale`` grows and always has slope 1/2 at zero.

>>> round(float(scaled_softplus(0.0, scale=2.0)), 4)  # log(2) / 2
0.3466
>>> round(float(ScaledSoftplus(scale=2.0)(0.0)), 4)
0.3466
"""

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def scaled_softplus(x, scale=1.0):
    """Softplus with adjustable sharpness: ``softplus(scale * x) / scale``.

    Args:
        x: Input tensor (any float dtype; the output has the same dtype).
        scale: Positive float; larger values make the curve closer to ReLU.

    Returns:
        A tensor shaped like `x`.

    Exercise `activation` (a custom activation function): convert `x` to a tensor, then return
    ``softplus(scale * x) / scale`` with `keras.ops`, so the result keeps the dtype of `x`.

    Example:

    >>> [round(v, 3) for v in ops.convert_to_numpy(scaled_softplus([-10.0, 10.0])).tolist()]
    [0.0, 10.0]
    """
    # exercise begin: activation
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
