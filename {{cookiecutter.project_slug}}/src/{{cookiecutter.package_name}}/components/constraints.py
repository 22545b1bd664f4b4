"""Custom constraint: clip weights from below so they stay non-negative (or above a floor).

Keras optimizers apply a variable's constraint right after every update.

>>> ops.convert_to_numpy(positive_weights(ops.convert_to_tensor([-1.0, 2.0]))).tolist()
[0.0, 2.0]
>>> ops.convert_to_numpy(PositiveWeights(0.5)(ops.convert_to_tensor([-1.0, 2.0]))).tolist()
[0.5, 2.0]
"""

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def positive_weights(weights):
    """Replace negative weights with zero.

    Args:
        weights: The weight tensor.

    Returns:
        A tensor like `weights` with every negative entry set to 0.

    Example:

    >>> ops.convert_to_numpy(positive_weights(ops.convert_to_tensor([-3.0]))).tolist()
    [0.0]
    """
    # exercise begin: constraint
    # Exercise `constraint` (a custom constraint; `PositiveWeights.__call__` too): return the
    # weights with every negative entry replaced by 0 (`ops.where` or `ops.maximum`).
    return ops.where(weights < 0, ops.zeros_like(weights), weights)
    # exercise end


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositiveWeights(keras.constraints.Constraint):
    """Constraint that keeps every weight at or above `min_value`.

    Args:
        min_value: Non-negative float floor; 0 gives `positive_weights`.

    Example:

    >>> PositiveWeights(min_value=0.1).get_config()
    {'min_value': 0.1}
    """

    def __init__(self, min_value=0.0):
        if not min_value >= 0:
            raise ValueError(f"`min_value` must be non-negative. Received: min_value={min_value}")
        self.min_value = float(min_value)

    def __call__(self, weights):
        # exercise begin: constraint
        # Exercise `constraint`, second part: `__call__` returns the weights clipped from below at
        # `min_value`, the floor cast to the weights' dtype first, so that float16 or bfloat16
        # weights come back in their own dtype. The optimizer calls it after every update.
        return ops.maximum(weights, ops.cast(self.min_value, weights.dtype))
        # exercise end

    def get_config(self):
        return {"min_value": self.min_value}
