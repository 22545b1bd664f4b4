"""Attention pooling: a sequence `(batch, time, features)` to one vector per example.

Each time step gets a score `v . tanh(x_t W)`; the softmax of the scores over time weighs the
steps, and the output is their weighted sum, so the layer learns which steps matter.

>>> layer = AttentionPooling(4)
>>> tuple(layer(ops.ones((2, 5, 3))).shape)
(2, 3)
>>> [tuple(w.shape) for w in layer.weights]
[(3, 4), (4,)]
"""

import keras
from keras import ops

from .._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(keras.layers.Layer):
    """Weighted mean over time, with weights from a learned score of each step.

    Args:
        units: Positive integer, size of the hidden layer of the score.
        **kwargs: Base layer arguments, e.g. `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch, time, features)`.

    Returns:
        Tensor of shape `(batch, features)`. The attention weights of the last call, shape
        `(batch, time)` and summing to 1 over time, are in `last_attention` (eager calls only).

    Example:

    >>> layer = AttentionPooling(2)
    >>> steps = ops.convert_to_tensor([[[1.0], [3.0]]])
    >>> ops.convert_to_numpy(layer(steps)).shape
    (1, 1)
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units}")
        self.units = units
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        features = input_shape[-1]
        self.score_kernel = self.add_weight(
            name="score_kernel", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units,), initializer="glorot_uniform"
        )

    def call(self, inputs):
        # (batch, time, units) -> (batch, time): one score per step, softmax over time
        scores = ops.matmul(ops.tanh(ops.matmul(inputs, self.score_kernel)), self.score_vector)
        weights = ops.softmax(scores, axis=-1)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
