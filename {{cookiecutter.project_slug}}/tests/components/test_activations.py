import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.components import activations
from {{ cookiecutter.package_name }}.components.activations import ScaledSoftplus, gelu, scaled_softplus


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


GELU_POINTS = np.arange(-6.0, 6.25, 0.25, dtype=np.float32)  # exact in bfloat16 and float16


def normal_cdf_and_pdf(x):
    x = np.asarray(x, np.float64)
    cdf = 0.5 * np.array([math.erfc(-v / math.sqrt(2.0)) for v in x])
    return cdf, np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)


def gelu_and_gradient(function, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    return y, tape.gradient(y, x)


# The points once (TensorFlow's kernels) and tiled past `FUSE_MIN_ELEMENTS` (one XLA pass each way).
PATHS = {
    "kernels": GELU_POINTS,
    "fused": np.tile(GELU_POINTS, activations.FUSE_MIN_ELEMENTS // GELU_POINTS.size + 1),
}


@pytest.mark.parametrize("path", PATHS)
def test_gelu_and_its_hand_written_gradient_match_the_normal_cdf_and_keras_gelu(path):
    points = PATHS[path]
    cdf, pdf = normal_cdf_and_pdf(GELU_POINTS)
    cdf, pdf = np.resize(cdf, points.size), np.resize(pdf, points.size)
    y, dy = gelu_and_gradient(gelu, points)
    np.testing.assert_allclose(y.numpy(), points * cdf, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dy.numpy(), cdf + points * pdf, rtol=1e-5, atol=1e-7)
    keras_y, keras_dy = gelu_and_gradient(keras.activations.gelu, points)
    np.testing.assert_allclose(y.numpy(), keras_y.numpy(), atol=1e-6)
    np.testing.assert_allclose(dy.numpy(), keras_dy.numpy(), atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_gelu_computes_in_float32_and_returns_the_inputs_dtype(dtype, path):
    """Both directions are the float32 results rounded once to `dtype`: computed in `dtype`
    itself, bfloat16's erfc and products round at every op and land elsewhere."""
    y, dy = gelu_and_gradient(gelu, tf.cast(PATHS[path], dtype))
    wide_y, wide_dy = gelu_and_gradient(gelu, PATHS[path])
    assert y.dtype == dy.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), tf.cast(wide_y, dtype).numpy())
    np.testing.assert_array_equal(dy.numpy(), tf.cast(wide_dy, dtype).numpy())


def xla_calls(elements):
    """The XLA-compiled calls in the traced forward and backward of gelu on `elements` values."""

    @tf.function
    def forward_and_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = gelu(x)
        return y, tape.gradient(y, x)

    graph = forward_and_backward.get_concrete_function(tf.TensorSpec([elements])).graph
    functions = [graph, *(f.graph for f in graph._functions.values())]
    return sum(
        op.node_def.attr["_XlaMustCompile"].b
        for g in functions
        for op in g.get_operations()
        if "_XlaMustCompile" in op.node_def.attr
    )


def test_gelu_fuses_each_direction_from_the_threshold_up_and_not_below():
    assert xla_calls(activations.FUSE_MIN_ELEMENTS) == 2
    assert xla_calls(activations.FUSE_MIN_ELEMENTS - 1) == 0


def test_gelu_is_found_again_by_its_registered_name():
    config = keras.activations.serialize(gelu)
    assert keras.activations.get(config) is gelu
    layer = keras.layers.Dense(3, activation=gelu)  # Keras' own: CustomDense is another exercise
    assert keras.layers.Dense.from_config(layer.get_config()).activation is gelu
