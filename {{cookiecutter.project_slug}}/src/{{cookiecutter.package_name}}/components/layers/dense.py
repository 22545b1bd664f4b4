"""Custom fully connected layer: ``activation(inputs @ kernel + bias)``.

>>> layer = CustomDense(3, activation="relu")
>>> tuple(layer(ops.ones((2, 4))).shape)
(2, 3)
>>> [tuple(w.shape) for w in layer.weights]
[(4, 3), (3,)]
"""

import keras
from keras import ops

from .._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class CustomDense(keras.layers.Layer):
    """Densely connected layer that accepts custom activations, initializers, etc.

    Variables are created in the layer's variable dtype (float32 under mixed precision)
    and the math runs in its compute dtype.

    Args:
        units: Positive integer, size of the last axis of the output.
        activation: Activation function, name or object (`None` means linear).
        kernel_initializer: Initializer for the kernel (name, object or config).
        kernel_regularizer: Optional regularizer for the kernel.
        kernel_constraint: Optional constraint for the kernel.
        use_bias: Whether to add a bias vector (initialized to zeros).
        **kwargs: Base layer arguments, e.g. `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch, ..., input_dim)`.

    Returns:
        Tensor of shape `(batch, ..., units)`.

    Example:

    >>> layer = CustomDense(2, kernel_initializer="ones")
    >>> ops.convert_to_numpy(layer(ops.ones((1, 3)))).tolist()
    [[3.0, 3.0]]
    """

    def __init__(
        self,
        units,
        activation=None,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        kernel_constraint=None,
        use_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        self.units = units
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.use_bias = use_bias

    def build(self, input_shape):
        # exercise begin: dense_layer
        # Exercise `dense_layer` (a custom layer: `build` and `call`): `build` creates
        # `self.kernel`, shape `(input_dim, units)` where `input_dim` is the LAST axis of
        # `input_shape` (inputs may have any rank), with `self.add_weight(name="kernel", ...)` and
        # the initializer, regularizer and constraint; then `self.bias`, shape `(units,)`, zeros (or
        # `None` without `use_bias`); then `self.input_spec = keras.layers.InputSpec(min_ndim=2,
        # axes={-1: input_dim})`. `call` returns ``activation(inputs @ kernel + bias)``
        # (`ops.matmul`).
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})
        # exercise end

    def call(self, inputs):
        # exercise begin: dense_layer
        outputs = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)
        # exercise end

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "use_bias": self.use_bias,
        }
        return {**base_config, **config}
