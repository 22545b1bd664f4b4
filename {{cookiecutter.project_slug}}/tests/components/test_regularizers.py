import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.regularizers import L1Penalty, l1_penalty


def test_l1_penalty_matches_hand_computed_value():
    weights = np.array([[1.0, -2.0], [0.5, 0.0]], dtype=np.float32)
    assert float(l1_penalty(weights, factor=0.1)) == pytest.approx(0.35)
    assert float(L1Penalty(factor=0.1)(weights)) == pytest.approx(0.35)


def test_layer_reports_l1_penalty_of_its_kernel_in_losses():
    # Keras' own Dense: a wrong CustomDense is the dense layer's exercise, not this one's.
    layer = keras.layers.Dense(3, kernel_initializer="ones", kernel_regularizer=L1Penalty(0.01))
    layer.build((None, 4))
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(0.01 * 4 * 3)


def test_regularizers_round_trip_through_keras_serialization():
    revived = keras.regularizers.get(keras.regularizers.serialize(L1Penalty(factor=1e-4)))
    assert isinstance(revived, L1Penalty)
    assert revived.get_config() == {"factor": 1e-4}
    assert L1Penalty.from_config({"factor": 0.5}).factor == 0.5
    assert keras.regularizers.get(keras.regularizers.serialize(l1_penalty)) is l1_penalty


def test_l1_penalty_rejects_negative_factor():
    with pytest.raises(ValueError, match="Received: factor=-1"):
        L1Penalty(factor=-1)
