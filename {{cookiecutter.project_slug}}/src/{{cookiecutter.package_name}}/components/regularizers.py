"""Custom regularizer: an L1 penalty ``factor * sum(|w|)`` that pushes weights to zero.

>>> float(l1_penalty(ops.convert_to_tensor([1.0, -2.0]), factor=0.5))
1.5
>>> float(L1Penalty(factor=0.5)(ops.convert_to_tensor([1.0, -2.0])))
1.5
"""

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def l1_penalty(weights, factor=0.01):
    """L1 penalty as a plain function.

    Args:
        weights: The weight tensor to penalize.
        factor: Non-negative float multiplying the sum of absolute values.

    Returns:
        A scalar tensor `factor * sum(abs(weights))`.

    Example:

    >>> round(float(l1_penalty(ops.ones((2, 3)))), 4)
    0.06
    """
    # exercise begin: regularizer
    # Exercise `regularizer` (a custom regularizer; `L1Penalty` calls this function): return
    # ``factor * sum(|weights|)`` with `ops.sum` and `ops.abs`. Keras adds the value to
    # `layer.losses` for every kernel that has the regularizer.
    return factor * ops.sum(ops.abs(weights))
    # exercise end


@keras.saving.register_keras_serializable(package=PACKAGE)
class L1Penalty(keras.regularizers.Regularizer):
    """L1 penalty as a configurable `keras.regularizers.Regularizer`.

    Args:
        factor: Non-negative float multiplying the sum of absolute values.

    Example:

    >>> layer = keras.layers.Dense(2, kernel_regularizer=L1Penalty(1e-4))
    >>> layer.kernel_regularizer.get_config()
    {'factor': 0.0001}
    """

    def __init__(self, factor=0.01):
        if not factor >= 0:
            raise ValueError(f"`factor` must be non-negative. Received: factor={factor}")
        self.factor = float(factor)

    def __call__(self, weights):
        return l1_penalty(weights, factor=self.factor)

    def get_config(self):
        return {"factor": self.factor}
