"""Custom layer with two inputs and two outputs: their sum and their product.

>>> import numpy as np
>>> total, product = SumAndProduct()([np.full((1, 2), 2.0), np.full((1, 2), 3.0)])
>>> np.asarray(total).tolist(), np.asarray(product).tolist()
([[5.0, 5.0]], [[6.0, 6.0]])
"""

import keras

from .._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class SumAndProduct(keras.layers.Layer):
    """Element-wise sum and product of two tensors of the same shape.

    Args:
        **kwargs: Base layer arguments, e.g. `name` and `dtype`.

    Call arguments:
        inputs: A list `[a, b]` of two tensors with the same shape.

    Returns:
        A tuple `(a + b, a * b)`.

    Example:

    >>> outputs = SumAndProduct()([keras.ops.ones((4, 3)), keras.ops.ones((4, 3))])
    >>> [tuple(x.shape) for x in outputs]
    [(4, 3), (4, 3)]
    """

    def build(self, input_shape):
        if len(input_shape) != 2 or tuple(input_shape[0]) != tuple(input_shape[1]):
            raise ValueError(
                "`SumAndProduct` takes two inputs of the same shape. "
                f"Received: input_shape={input_shape}"
            )

    def call(self, inputs):
        a, b = inputs
        return a + b, a * b

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]), tuple(input_shape[0])
