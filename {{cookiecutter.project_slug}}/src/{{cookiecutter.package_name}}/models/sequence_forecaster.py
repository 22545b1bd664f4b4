"""Subclassed two-headed sequence model: the next value of a signal and whether it goes up.

``window (batch, time, 1) -> CustomDense(hidden_units, relu) on every step -> AttentionPooling
-> concat with the last step -> CustomDense(hidden_units, relu) -> {"next_value": CustomDense(1),
"direction": CustomDense(2)}``: two named outputs, float32 under every precision policy.

>>> model = SequenceForecaster(hidden_units=8, attention_units=4, seed=0)
>>> outputs = model(keras.ops.zeros((2, 12, 1)))
>>> {name: tuple(value.shape) for name, value in outputs.items()}
{'next_value': (2, 1), 'direction': (2, 2)}
"""

import keras

from ..components._registry import PACKAGE
from ..components.layers import AttentionPooling, CustomDense


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequenceForecaster(keras.Model):
    """A multi-output model: one body, a regression head and a classification head.

    The body applies the custom `CustomDense` to every time step (a dense layer on a 3-D
    tensor), pools the steps with the custom `AttentionPooling`, and adds the last step back
    (the most recent value matters most for what comes next).

    Args:
        hidden_units: Positive integer, width of the per-step and shared dense layers.
        attention_units: Positive integer, width of the attention score.
        seed: Optional integer making initial weights reproducible.
        **kwargs: Base model arguments, e.g. `name`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, 1)`.

    Returns:
        A dict: `next_value`, shape `(batch, 1)`, and `direction`, logits of "down" and "up"
        of shape `(batch, 2)`; both float32.
    """

    def __init__(self, hidden_units=32, attention_units=16, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in [("hidden_units", hidden_units), ("attention_units", attention_units)]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        self.hidden_units, self.attention_units, self.seed = hidden_units, attention_units, seed

        def init(offset):
            return keras.initializers.GlorotUniform(None if seed is None else seed + offset)

        self.per_step = CustomDense(hidden_units, "relu", kernel_initializer=init(0))
        self.pooling = AttentionPooling(attention_units)
        self.shared = CustomDense(hidden_units, "relu", kernel_initializer=init(1))
        # float32 heads: the losses and metrics see full precision under mixed precision
        self.next_value = CustomDense(1, kernel_initializer=init(2), dtype="float32")
        self.direction = CustomDense(2, kernel_initializer=init(3), dtype="float32")

    def call(self, inputs):
        pooled = self.pooling(self.per_step(inputs))
        last = keras.ops.cast(inputs[:, -1, :], pooled.dtype)
        features = self.shared(keras.ops.concatenate([pooled, last], axis=-1))
        return {"next_value": self.next_value(features), "direction": self.direction(features)}

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "attention_units": self.attention_units,
            "seed": self.seed,
        }
