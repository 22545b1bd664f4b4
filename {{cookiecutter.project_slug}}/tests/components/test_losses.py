import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.losses import HuberLoss, huber

Y_TRUE = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
Y_PRED = np.array([[0.5, 3.0], [1.0, -1.0]], dtype=np.float32)
# errors: |0.5| -> 0.125, |3| -> 3 - 0.5 = 2.5, |0| -> 0, |2| -> 2 - 0.5 = 1.5
PER_SAMPLE = [(0.125 + 2.5) / 2, (0.0 + 1.5) / 2]


def test_huber_matches_hand_computed_values():
    np.testing.assert_allclose(keras.ops.convert_to_numpy(huber(Y_TRUE, Y_PRED)), PER_SAMPLE)


def test_huber_threshold_moves_the_quadratic_region():
    # threshold 4: all quadratic, 0.5 * e^2
    losses = keras.ops.convert_to_numpy(huber(Y_TRUE, Y_PRED, threshold=4.0))
    np.testing.assert_allclose(losses, [(0.125 + 4.5) / 2, (0.0 + 2.0) / 2])


def test_huber_loss_default_reduction_is_mean_over_batch():
    assert float(HuberLoss()(Y_TRUE, Y_PRED)) == pytest.approx(np.mean(PER_SAMPLE))


def test_huber_loss_without_reduction_returns_per_sample_losses():
    losses = HuberLoss(threshold=1.0, reduction=None)(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses), PER_SAMPLE)


def test_huber_loss_applies_sample_weights():
    loss = HuberLoss(reduction="sum")(Y_TRUE, Y_PRED, sample_weight=np.array([2.0, 0.0]))
    assert float(loss) == pytest.approx(2 * PER_SAMPLE[0])


def test_huber_loss_computes_in_float32_for_low_precision_predictions():
    loss = HuberLoss()(Y_TRUE, keras.ops.cast(Y_PRED, "bfloat16"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_huber_loss_round_trips_through_keras_serialization():
    original = HuberLoss(threshold=2.5, reduction=None, name="robust")
    revived = keras.losses.get(keras.losses.serialize(original))
    assert isinstance(revived, HuberLoss)
    assert revived.get_config() == {"name": "robust", "reduction": None, "threshold": 2.5}
    assert HuberLoss.from_config(original.get_config()).threshold == 2.5


def test_huber_loss_rejects_non_positive_threshold():
    with pytest.raises(ValueError, match="Received: threshold=0"):
        HuberLoss(threshold=0)
