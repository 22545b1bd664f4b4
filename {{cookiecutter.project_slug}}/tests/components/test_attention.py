"""Attention pooling: Keras' layer harness, and the weighted mean over time by hand."""

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

from {{ cookiecutter.package_name }}.components.layers import AttentionPooling

# The harness fits a tiny model on a generator: expected noise.
pytestmark = pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")


def test_attention_pooling_passes_keras_layer_harness():
    TestCase().run_layer_test(
        AttentionPooling,
        init_kwargs={"units": 3},
        input_shape=(2, 5, 4),
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=2,
        supports_masking=False,
    )


def test_attention_pooling_is_the_softmax_weighted_mean_over_time():
    layer = AttentionPooling(2)
    x = np.array([[[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]], np.float32)  # (1, time 3, features 2)
    out = keras.ops.convert_to_numpy(layer(x))
    w, v = (keras.ops.convert_to_numpy(weight) for weight in layer.weights)
    scores = np.tanh(x[0] @ w) @ v
    weights = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(out[0], weights @ x[0], rtol=1e-5, atol=1e-6)


def test_attention_pooling_of_identical_steps_is_that_step():
    steps = np.tile(np.array([[[0.5, -2.0, 3.0]]], np.float32), (4, 7, 1))  # (4, 7, 3)
    np.testing.assert_allclose(AttentionPooling(5)(steps), steps[:, 0], rtol=1e-6)


def test_attention_pooling_round_trips_its_config_by_behaviour():
    layer = AttentionPooling(3)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    out = layer(x)
    again = AttentionPooling.from_config(layer.get_config())
    again.build(x.shape)
    again.set_weights(layer.get_weights())
    assert again.units == 3
    np.testing.assert_allclose(again(x), out, rtol=1e-6)


@pytest.mark.parametrize("units", [0, -1, 2.5])
def test_attention_pooling_rejects_invalid_units(units):
    with pytest.raises(ValueError, match=f"Received: units={units}"):
        AttentionPooling(units)
