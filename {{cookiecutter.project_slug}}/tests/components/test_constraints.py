import keras
import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.components.constraints import (
    PositiveWeights,
    positive_weights,
)


def test_positive_weights_matches_hand_computed_values():
    weights = np.array([-1.5, 0.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(positive_weights(weights)), [0.0, 0.0, 2.0]
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(PositiveWeights(0.5)(weights)), [0.5, 0.5, 2.0]
    )


def test_optimizer_applies_constraint_after_each_update():
    # Keras' own Dense: a wrong CustomDense is the dense layer's exercise, not this one's.
    layer = keras.layers.Dense(2, kernel_initializer="zeros", kernel_constraint=PositiveWeights())
    inputs = np.ones((3, 4), dtype=np.float32)
    layer.build(inputs.shape)
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer(inputs))  # gradient +3 everywhere: SGD pushes kernel to -3
    gradients = tape.gradient(loss, layer.trainable_variables)
    optimizer.apply_gradients(zip(gradients, layer.trainable_variables, strict=True))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), np.zeros((4, 2)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.bias), [-3.0, -3.0])


def test_constraints_round_trip_through_keras_serialization():
    revived = keras.constraints.get(keras.constraints.serialize(PositiveWeights(0.25)))
    assert isinstance(revived, PositiveWeights)
    assert revived.get_config() == {"min_value": 0.25}
    assert PositiveWeights.from_config({"min_value": 1.0}).min_value == 1.0
    assert keras.constraints.get(keras.constraints.serialize(positive_weights)) is positive_weights


def test_positive_weights_rejects_negative_floor():
    with pytest.raises(ValueError, match="Received: min_value=-1"):
        PositiveWeights(min_value=-1)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_the_floor_keeps_the_weights_dtype(dtype):
    # An uncast float32 floor would promote float16 / bfloat16 weights to float32.
    weights = keras.ops.convert_to_tensor([-1.0, 2.0], dtype=dtype)
    for constraint in (PositiveWeights(0.5), PositiveWeights(), positive_weights):
        clipped = constraint(weights)
        assert keras.backend.standardize_dtype(clipped.dtype) == dtype
    floor = keras.ops.convert_to_numpy(keras.ops.cast(PositiveWeights(0.5)(weights), "float32"))
    assert floor.tolist() == [0.5, 2.0]
