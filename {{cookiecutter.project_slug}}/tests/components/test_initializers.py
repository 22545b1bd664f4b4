import math

import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.initializers import (
    GlorotNormalGain,
    glorot_normal_gain,
)


def test_glorot_normal_function_has_glorot_stddev():
    values = keras.ops.convert_to_numpy(glorot_normal_gain((200, 300)))
    assert values.shape == (200, 300)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values.std(), math.sqrt(2.0 / 500), rtol=0.03)
    assert abs(values.mean()) < 0.003


def test_gain_multiplies_stddev():
    values = keras.ops.convert_to_numpy(GlorotNormalGain(gain=3.0, seed=1)((200, 300)))
    np.testing.assert_allclose(values.std(), 3.0 * math.sqrt(2.0 / 500), rtol=0.03)


def test_seed_makes_values_reproducible_and_distinct_seeds_differ():
    first = keras.ops.convert_to_numpy(GlorotNormalGain(seed=7)((4, 4)))
    again = keras.ops.convert_to_numpy(GlorotNormalGain(seed=7)((4, 4)))
    other = keras.ops.convert_to_numpy(GlorotNormalGain(seed=8)((4, 4)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_an_unseeded_instance_returns_the_same_values_at_every_call():
    initializer = GlorotNormalGain()  # like Keras' own: the seed is drawn once, at creation
    first = keras.ops.convert_to_numpy(initializer((4, 4)))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(initializer((4, 4))))
    other = keras.ops.convert_to_numpy(GlorotNormalGain()((4, 4)))
    assert not np.array_equal(first, other)  # another unseeded instance draws other values


def test_initializer_honours_requested_dtype():
    values = GlorotNormalGain(seed=0)((3, 3), dtype="float16")
    assert keras.backend.standardize_dtype(values.dtype) == "float16"
    values = glorot_normal_gain((3, 3), dtype="float16")
    assert keras.backend.standardize_dtype(values.dtype) == "float16"


def test_initializers_round_trip_through_keras_serialization():
    initializer = GlorotNormalGain(gain=2.0, seed=3)
    revived = keras.initializers.get(keras.initializers.serialize(initializer))
    assert isinstance(revived, GlorotNormalGain)
    assert revived.get_config() == {"gain": 2.0, "seed": 3}
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(revived((2, 5))), keras.ops.convert_to_numpy(initializer((2, 5)))
    )
    assert GlorotNormalGain.from_config(initializer.get_config()).gain == 2.0
    function = keras.initializers.get(keras.initializers.serialize(glorot_normal_gain))
    assert function is glorot_normal_gain


@pytest.mark.parametrize(
    "kwargs, message",
    [({"gain": -1.0}, "Received: gain=-1.0"), ({"seed": 1.5}, "Received: seed=1.5")],
)
def test_initializer_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GlorotNormalGain(**kwargs)


@pytest.mark.parametrize(
    "shape",
    [(3, 3, 16, 32), (5, 32, 48)],
    ids=["conv2d_kernel", "conv1d_kernel"],
)
def test_convolution_kernels_count_the_receptive_field_in_both_fans(shape):
    # Keras' fans for a kernel (..., in, out): in x receptive field and out x receptive field.
    # Fans read from the first and last axes alone (3 and 32) give 0.24 for (3, 3, 16, 32),
    # not sqrt(2 / (48 * 9)) = 0.068.
    receptive_field = math.prod(shape[:-2])
    fans = (shape[-2] + shape[-1]) * receptive_field
    expected = math.sqrt(2.0 / fans)
    assert float(np.std(glorot_normal_gain(shape))) == pytest.approx(expected, rel=0.06)
    assert float(np.std(GlorotNormalGain(gain=1.5, seed=4)(shape))) == pytest.approx(
        1.5 * expected, rel=0.06
    )


def test_the_function_initializer_draws_new_values_at_every_call():
    # A fixed seed inside the function would give every kernel of a shape the same values.
    keras.utils.set_random_seed(0)
    first, second = glorot_normal_gain((8, 8)), glorot_normal_gain((8, 8))
    assert not np.allclose(first, second)
