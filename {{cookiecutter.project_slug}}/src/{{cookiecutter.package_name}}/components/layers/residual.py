"""Custom composite layer: a residual block ``inputs + f(inputs)`` of `CustomDense` layers.

>>> block = ResidualBlock(4, num_layers=2)
>>> tuple(block(keras.ops.ones((2, 4))).shape)
(2, 4)
>>> len(block.trainable_weights)  # two kernels, two biases
4
"""

import keras

from .._registry import PACKAGE
from .dense import CustomDense


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """Stack of `num_layers` `CustomDense(units)` layers with a skip connection.

    Args:
        units: Positive integer; must equal the size of the inputs' last axis.
        num_layers: Positive integer, number of dense layers inside the block.
        activation: Activation of every dense layer.
        kernel_initializer: Initializer of every kernel (each layer gets its own copy).
        kernel_regularizer: Optional regularizer of every kernel.
        seed: Optional integer; if given, layer `i` seeds its kernel initializer with
            `seed + i` (overriding the initializer's own seed), so layers differ.
        **kwargs: Base layer arguments, e.g. `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch, ..., units)`.

    Returns:
        Tensor of the same shape as `inputs`.

    Example:

    >>> block = ResidualBlock(3, kernel_initializer="zeros")
    >>> keras.ops.convert_to_numpy(block(keras.ops.ones((1, 3)))).tolist()  # f(x) = 0
    [[1.0, 1.0, 1.0]]
    """

    def __init__(
        self,
        units,
        num_layers=2,
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(
                f"`num_layers` must be a positive integer. Received: num_layers={num_layers}"
            )
        self.units = units
        self.num_layers = num_layers
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.hidden = [
            CustomDense(
                units,
                activation=self.activation,
                kernel_initializer=self._initializer_for_layer(index),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name=f"dense_{index}",
            )
            for index in range(num_layers)
        ]

    def _initializer_for_layer(self, index):
        # A fresh copy per layer; Keras initializers return the same values at every call.
        config = keras.initializers.serialize(self.kernel_initializer)
        if self.seed is not None and isinstance(config, dict) and "seed" in config["config"]:
            config["config"]["seed"] = self.seed + index
        return keras.initializers.get(config)

    def build(self, input_shape):
        if input_shape[-1] != self.units:
            raise ValueError(
                "The last axis of the inputs must equal `units` for the skip connection. "
                f"Received: input_shape={input_shape}, units={self.units}"
            )
        for layer in self.hidden:
            layer.build(input_shape)

    def call(self, inputs):
        # exercise begin: residual_block
        # Exercise `residual_block` (a layer made of layers: `call`): pass `inputs` through every
        # layer of `self.hidden` in turn and return ``inputs + outputs``, the skip connection.
        outputs = inputs
        for layer in self.hidden:
            outputs = layer(outputs)
        return inputs + outputs
        # exercise end

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "num_layers": self.num_layers,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "seed": self.seed,
        }
        return {**base_config, **config}
