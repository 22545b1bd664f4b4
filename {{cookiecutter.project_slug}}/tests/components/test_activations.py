import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.activations import ScaledSoftplus, scaled_softplus


def test_scaled_softplus_matches_hand_computed_values():
    x = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    expected = np.log1p(np.exp(2.0 * x)) / 2.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(scaled_softplus(x, scale=2.0)), expected, rtol=1e-6
    )


def test_scaled_softplus_tends_to_relu_as_scale_grows():
    x = np.array([-2.0, -0.5, 0.5, 2.0], dtype=np.float32)
    outputs = keras.ops.convert_to_numpy(scaled_softplus(x, scale=50.0))
    np.testing.assert_allclose(outputs, np.maximum(x, 0.0), atol=1e-6)


def test_scaled_softplus_class_equals_function():
    x = np.linspace(-3, 3, 7).astype(np.float32)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ScaledSoftplus(3.0)(x)),
        keras.ops.convert_to_numpy(scaled_softplus(x, scale=3.0)),
    )


def test_scaled_softplus_keeps_low_precision_dtype():
    x = keras.ops.ones((2,), dtype="bfloat16")
    assert keras.backend.standardize_dtype(ScaledSoftplus(2.0)(x).dtype) == "bfloat16"


def test_activations_round_trip_through_keras_serialization():
    revived = keras.activations.get(keras.activations.serialize(ScaledSoftplus(scale=4.0)))
    assert isinstance(revived, ScaledSoftplus)
    assert revived.get_config() == {"scale": 4.0}
    assert ScaledSoftplus.from_config(revived.get_config()).scale == 4.0
    assert keras.activations.get(keras.activations.serialize(scaled_softplus)) is scaled_softplus


def test_scaled_softplus_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="Received: scale=0"):
        ScaledSoftplus(scale=0)
