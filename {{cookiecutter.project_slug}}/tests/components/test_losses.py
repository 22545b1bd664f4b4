import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.losses import (
    HuberLoss,
    SparseCrossEntropy,
    huber,
    sparse_cross_entropy,
)

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


@pytest.mark.parametrize(
    ("threshold", "error", "expected"),
    [(2.0, 5.0, 8.0), (0.5, 3.0, 1.375), (2.0, 1.5, 1.125), (0.5, 0.25, 0.03125)],
    ids=["linear-t2", "linear-t0.5", "quadratic-t2", "quadratic-t0.5"],
)
def test_huber_both_regions_for_thresholds_other_than_one(threshold, error, expected):
    # linear: t |e| - t^2 / 2 (2*5 - 2 = 8; 0.5*3 - 0.125 = 1.375); quadratic: e^2 / 2.
    # A slope of 1 (|e| - t^2/2) or t |e| - t/2 agree with these only at t = 1.
    for sign in (1.0, -1.0):
        loss = huber([[0.0]], [[sign * error]], threshold=threshold)
        assert float(loss[0]) == pytest.approx(expected, rel=1e-6), sign


def test_huber_is_continuous_where_the_regions_meet():
    for threshold in (0.5, 2.0, 3.0):
        below, above = huber([[0.0], [0.0]], [[threshold - 1e-4], [threshold + 1e-4]], threshold)
        assert float(above) - float(below) == pytest.approx(2e-4 * threshold, rel=1e-2)


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


LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
# log-sum-exp of row 0: log(e^2 + 2) = 2.2395447; of row 1: log 3 = 1.0986123
LSE = np.array([np.log(np.exp(2.0) + 2.0), np.log(3.0)])


def test_sparse_cross_entropy_matches_hand_computed_values():
    losses = keras.ops.convert_to_numpy(sparse_cross_entropy([0, 2], LOGITS))
    np.testing.assert_allclose(losses, [LSE[0] - 2.0, LSE[1]], rtol=1e-6)  # 0.2395, 1.0986


def test_label_smoothing_spreads_the_target_over_every_class():
    # target of row 0 with smoothing 0.3 over 3 classes: (0.8, 0.1, 0.1)
    loss = keras.ops.convert_to_numpy(sparse_cross_entropy([0], LOGITS[:1], label_smoothing=0.3))
    expected = 0.8 * (LSE[0] - 2.0) + 0.1 * LSE[0] + 0.1 * LSE[0]
    np.testing.assert_allclose(loss, [expected], rtol=1e-6)


def test_sparse_cross_entropy_is_finite_for_confident_wrong_logits_in_bfloat16():
    logits = keras.ops.cast([[200.0, -200.0]], "bfloat16")
    loss = keras.ops.convert_to_numpy(SparseCrossEntropy(reduction=None)([1], logits))
    assert loss.dtype == np.float32 and loss[0] == pytest.approx(400.0, rel=1e-2)


def test_sparse_cross_entropy_loss_reduces_over_the_batch_and_round_trips():
    loss = SparseCrossEntropy(label_smoothing=0.1)
    per_sample = SparseCrossEntropy(label_smoothing=0.1, reduction=None)([0, 2], LOGITS)
    assert float(loss([0, 2], LOGITS)) == pytest.approx(float(np.mean(per_sample)))
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(revived) is SparseCrossEntropy and revived.label_smoothing == 0.1


def test_sparse_cross_entropy_rejects_smoothing_outside_zero_to_one():
    with pytest.raises(ValueError, match="Received: label_smoothing=1.0"):
        SparseCrossEntropy(label_smoothing=1.0)


def test_huber_takes_the_mean_over_the_last_axis_of_higher_rank_inputs():
    # (batch=2, time=3, d=2): one loss per (sample, time step), the mean over d only.
    errors = np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 4.0
    got = keras.ops.convert_to_numpy(huber(np.zeros_like(errors), errors))
    per_element = np.where(errors < 1.0, 0.5 * errors**2, errors - 0.5)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, per_element.mean(axis=-1), rtol=1e-6)


def test_huber_casts_integer_targets_to_the_predictions_not_the_reverse():
    # Predictions cast to int32 targets would truncate 1.5 to 1 (a loss of 0).
    targets = np.array([[1], [1]], dtype=np.int32)
    got = huber(targets, np.array([[1.5], [4.0]], dtype=np.float32), threshold=2.0)
    assert keras.ops.convert_to_numpy(got).tolist() == [0.125, 4.0]
