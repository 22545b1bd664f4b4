"""Subclassed regression model built from the custom components.

``inputs (batch, d) -> CustomDense projection -> GaussianNoise -> ResidualBlock x num_blocks
-> CustomDense output (batch, output_units)``, plus an auxiliary head that reconstructs the
inputs from the last hidden features and adds ``reconstruction_weight * MSE`` as a loss.

>>> model = ResidualRegressor(hidden_units=8, num_blocks=1, seed=0)
>>> tuple(model(ops.zeros((4, 3))).shape)
(4, 1)
>>> [name for name in model.variable_groups()]
['body', 'head']
"""

import keras
from keras import ops

from ..components._registry import PACKAGE
from ..components.activations import ScaledSoftplus, gelu
from ..components.constraints import PositiveWeights
from ..components.initializers import GlorotNormalGain
from ..components.layers import CustomDense, GaussianNoise, ResidualBlock
from ..components.regularizers import L1Penalty
from .groups import body_and_head


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualRegressor(keras.Model):
    """Residual MLP regressor with an input-reconstruction auxiliary loss.

    `model.losses` holds the reconstruction term (one scalar per call, added in training
    and inference) followed by the L1 penalties of the body kernels. The reconstruction
    term is also reported by `model.reconstruction_tracker` (a `keras.metrics.Mean` named
    `"reconstruction_loss"`), updated only when `training=True`.

    Args:
        hidden_units: Positive integer, width of the projection and residual blocks.
        num_blocks: Non-negative integer, number of `ResidualBlock`s.
        output_units: Positive integer, size of the prediction.
        noise_stddev: Non-negative float, stddev of the training-time input noise.
        reconstruction_weight: Non-negative float multiplying the reconstruction MSE.
        l1: Non-negative float, L1 factor of the body kernels (0 disables it).
        seed: Optional integer making initial weights and noise reproducible.
        **kwargs: Base model arguments, e.g. `name`.

    Call arguments:
        inputs: Float tensor of shape `(batch, input_dim)`.
        training: Python boolean; adds noise and updates the tracker when `True`.

    Returns:
        Predictions of shape `(batch, output_units)`, always float32.

    Example:

    >>> model = ResidualRegressor(hidden_units=4, num_blocks=0, l1=0.0, seed=1)
    >>> _ = model(ops.ones((2, 3)), training=True)
    >>> len(model.losses), float(model.reconstruction_tracker.result()) > 0
    (1, True)
    """

    def __init__(
        self,
        hidden_units=64,
        num_blocks=2,
        output_units=1,
        noise_stddev=0.05,
        reconstruction_weight=0.05,
        l1=1e-5,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [("hidden_units", hidden_units), ("output_units", output_units)]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(
                f"`num_blocks` must be a non-negative integer. Received: num_blocks={num_blocks}"
            )
        for name, value in [("reconstruction_weight", reconstruction_weight), ("l1", l1)]:
            if not value >= 0:
                raise ValueError(f"`{name}` must be non-negative. Received: {name}={value}")
        self.hidden_units = hidden_units
        self.num_blocks = num_blocks
        self.output_units = output_units
        self.noise_stddev = noise_stddev
        self.reconstruction_weight = reconstruction_weight
        self.l1 = l1
        self.seed = seed

        regularizer = L1Penalty(l1) if l1 > 0 else None
        self.input_projection = CustomDense(
            hidden_units,
            activation=ScaledSoftplus(scale=2.0),
            kernel_initializer=GlorotNormalGain(seed=self._seed(0)),
            kernel_regularizer=regularizer,
            dtype=self.dtype_policy,
            name="input_projection",
        )
        self.noise = GaussianNoise(
            noise_stddev, seed=self._seed(1), dtype=self.dtype_policy, name="noise"
        )
        self.blocks = [
            ResidualBlock(
                hidden_units,
                # gelu: zero-centred, so the residual stream does not drift (softplus's
                # positive outputs made this task plateau for ~300 steps). The package's own,
                # computed in float32: the same values, cheaper on CPUs (activations.py).
                activation=gelu,
                kernel_initializer=GlorotNormalGain(),
                kernel_regularizer=regularizer,
                seed=self._seed(100 + 10 * index),
                dtype=self.dtype_policy,
                name=f"residual_block_{index}",
            )
            for index in range(num_blocks)
        ]
        # float32 output layer: predictions (and the loss) stay float32 under mixed precision.
        self.output_layer = CustomDense(
            output_units,
            kernel_initializer=GlorotNormalGain(seed=self._seed(2)),
            dtype="float32",
            name="output",
        )
        self.reconstruction_head = None  # created in build(), once the input size is known
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")

    def _seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def build(self, input_shape):
        hidden_shape = (*input_shape[:-1], self.hidden_units)
        self.input_projection.build(input_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.output_layer.build(hidden_shape)
        # Positive kernel: harmless here (the bias and the hidden features carry the sign).
        self.reconstruction_head = CustomDense(
            input_shape[-1],
            kernel_initializer=GlorotNormalGain(seed=self._seed(3)),
            kernel_constraint=PositiveWeights(),
            dtype=self.dtype_policy,
            name="reconstruction_head",
        )
        self.reconstruction_head.build(hidden_shape)

    def call(self, inputs, training=False):
        # exercise begin: model
        # Exercise `model` (a subclassed model: `call`): run `input_projection` on the inputs, then
        # `noise` on its output (pass `training` on; the noise perturbs the projected features, not
        # the raw inputs), every block of `self.blocks` and `output_layer`. Reconstruct the inputs
        # from the last hidden features with `reconstruction_head`; add ``reconstruction_weight *
        # mean((reconstruction - inputs)**2)``, computed in float32, with `self.add_loss`, and
        # update `reconstruction_tracker` with it only when `training`.
        hidden = self.input_projection(inputs)
        hidden = self.noise(hidden, training=training)
        for block in self.blocks:
            hidden = block(hidden)
        outputs = self.output_layer(hidden)

        reconstruction = ops.cast(self.reconstruction_head(hidden), "float32")
        error = ops.mean(ops.square(reconstruction - ops.cast(inputs, "float32")))
        reconstruction_loss = self.reconstruction_weight * error
        self.add_loss(reconstruction_loss)
        if training:
            self.reconstruction_tracker.update_state(reconstruction_loss)
        return outputs
        # exercise end

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
            "hidden_units": self.hidden_units,
            "num_blocks": self.num_blocks,
            "output_units": self.output_units,
            "noise_stddev": self.noise_stddev,
            "reconstruction_weight": self.reconstruction_weight,
            "l1": self.l1,
            "seed": self.seed,
        }
        return {**base_config, **config}
