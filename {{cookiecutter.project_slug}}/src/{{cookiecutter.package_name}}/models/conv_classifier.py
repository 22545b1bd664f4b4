"""Subclassed image classifier: two convolutions, then the custom dense and residual layers.

``images (batch, h, w, c) -> GaussianNoise -> Conv2D(filters, 3x3) -> Conv2D(2 filters, 3x3,
stride 2) -> flatten -> CustomDense(hidden_units) -> ResidualBlock x num_blocks
-> CustomDense(num_classes)``: logits, float32 under every precision policy.

>>> model = ConvClassifier(num_classes=3, filters=4, hidden_units=8, seed=0)
>>> tuple(model(keras.ops.zeros((2, 8, 8, 1))).shape)
(2, 3)
>>> [name for name in model.variable_groups()]
['body', 'head']
"""

import math

import keras

from ..components._registry import PACKAGE
from ..components.activations import gelu
from ..components.initializers import GlorotNormalGain
from ..components.layers import CustomDense, GaussianNoise, ResidualBlock
from ..components.regularizers import L1Penalty
from .groups import body_and_head


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvClassifier(keras.Model):
    """Small convolutional classifier returning logits.

    The convolutions are Keras' own `Conv2D`, initialized by the custom `GlorotNormalGain`
    after the custom `GaussianNoise`; the classifier on top is the project's `CustomDense` and
    `ResidualBlock`, with the custom `L1Penalty` on their kernels.

    Args:
        num_classes: Integer of at least 2, the number of logits.
        filters: Positive integer, channels of the first convolution (the second has twice as
            many).
        hidden_units: Positive integer, width of the dense layers.
        num_blocks: Non-negative integer, number of `ResidualBlock`s after the first dense layer.
        noise_stddev: Non-negative float, stddev of the training-time noise on the images.
        l1: Non-negative float, L1 factor of the dense kernels (0 disables it).
        seed: Optional integer making initial weights and noise reproducible.
        **kwargs: Base model arguments, e.g. `name`.

    Call arguments:
        inputs: Float tensor of shape `(batch, height, width, channels)`.
        training: Python boolean; adds noise when `True`.

    Returns:
        Logits of shape `(batch, num_classes)`, always float32.

    Example:

    >>> model = ConvClassifier(num_classes=10, filters=2, hidden_units=4, num_blocks=0, seed=1)
    >>> logits = model(keras.ops.ones((3, 8, 8, 1)))
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((3, 10), 'float32')
    """

    def __init__(
        self,
        num_classes=10,
        filters=16,
        hidden_units=64,
        num_blocks=1,
        noise_stddev=0.0,
        l1=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                "`num_classes` must be an integer of at least 2. "
                f"Received: num_classes={num_classes}"
            )
        for name, value in [("filters", filters), ("hidden_units", hidden_units)]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(
                f"`num_blocks` must be a non-negative integer. Received: num_blocks={num_blocks}"
            )
        for name, value in [("noise_stddev", noise_stddev), ("l1", l1)]:
            if not value >= 0:
                raise ValueError(f"`{name}` must be non-negative. Received: {name}={value}")
        self.num_classes = num_classes
        self.filters = filters
        self.hidden_units = hidden_units
        self.num_blocks = num_blocks
        self.noise_stddev = noise_stddev
        self.l1 = l1
        self.seed = seed

        policy = self.dtype_policy
        regularizer = L1Penalty(l1) if l1 > 0 else None
        self.noise = GaussianNoise(noise_stddev, seed=self._seed(0), dtype=policy, name="noise")
        self.conv_1 = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            # gelu, zero-centred: with the all-positive ScaledSoftplus the loss sat near log(10)
            # for the first ~60 steps (the regressor's blocks use gelu for the same reason).
            # The package's own gelu: Keras' values, computed in float32 (activations.py).
            activation=gelu,
            kernel_initializer=GlorotNormalGain(seed=self._seed(1)),
            dtype=policy,
            name="conv_1",
        )
        self.conv_2 = keras.layers.Conv2D(
            2 * filters,
            3,
            strides=2,
            padding="same",
            activation=gelu,
            kernel_initializer=GlorotNormalGain(seed=self._seed(2)),
            dtype=policy,
            name="conv_2",
        )
        self.flatten = keras.layers.Flatten(dtype=policy, name="flatten")
        self.hidden = CustomDense(
            hidden_units,
            activation=gelu,
            kernel_initializer=GlorotNormalGain(seed=self._seed(3)),
            kernel_regularizer=regularizer,
            dtype=policy,
            name="hidden",
        )
        self.blocks = [
            ResidualBlock(
                hidden_units,
                activation=gelu,
                kernel_initializer=GlorotNormalGain(),
                kernel_regularizer=regularizer,
                seed=self._seed(100 + 10 * index),
                dtype=policy,
                name=f"residual_block_{index}",
            )
            for index in range(num_blocks)
        ]
        # float32 logits: the softmax and the loss stay float32 under mixed precision.
        self.output_layer = CustomDense(
            num_classes,
            kernel_initializer=GlorotNormalGain(seed=self._seed(4)),
            dtype="float32",
            name="output",
        )

    def _seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def build(self, input_shape):
        self.conv_1.build(input_shape)
        shape = self.conv_1.compute_output_shape(input_shape)
        self.conv_2.build(shape)
        shape = self.conv_2.compute_output_shape(shape)
        flat = (shape[0], math.prod(shape[1:]))
        self.hidden.build(flat)
        hidden_shape = (shape[0], self.hidden_units)
        for block in self.blocks:
            block.build(hidden_shape)
        self.output_layer.build(hidden_shape)

    def call(self, inputs, training=False):
        hidden = self.noise(inputs, training=training)
        hidden = self.conv_2(self.conv_1(hidden))
        hidden = self.hidden(self.flatten(hidden))
        for block in self.blocks:
            hidden = block(hidden)
        return self.output_layer(hidden)

    def variable_groups(self):
        """Split the trainable variables into `"body"` and `"head"` (the output layer).

        Returns:
            A dict `{"body": [...], "head": [...]}` covering every trainable variable of
            the built model exactly once, in `model.trainable_variables` order.
        """
        return body_and_head(self, self.output_layer)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_classes": self.num_classes,
            "filters": self.filters,
            "hidden_units": self.hidden_units,
            "num_blocks": self.num_blocks,
            "noise_stddev": self.noise_stddev,
            "l1": self.l1,
            "seed": self.seed,
        }
        return {**base_config, **config}
