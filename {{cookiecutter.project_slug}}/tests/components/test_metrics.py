import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.metrics import StreamingAccuracy, StreamingMAE


def test_streaming_mae_is_exact_over_uneven_batches():
    metric = StreamingMAE()
    metric.update_state([[1.0], [2.0], [3.0]], [[2.0], [2.0], [2.0]])  # errors 1, 0, 1
    metric.update_state([[0.0]], [[6.0]])  # error 6
    assert float(metric.result()) == pytest.approx((1 + 0 + 1 + 6) / 4)  # 2.0
    assert float(metric.result()) != pytest.approx((2 / 3 + 6) / 2)  # not the mean of means


def test_streaming_mae_averages_over_the_last_axis_per_sample():
    metric = StreamingMAE()
    metric.update_state([[0.0, 0.0], [0.0, 0.0]], [[1.0, 3.0], [0.0, 0.0]])
    assert float(metric.result()) == pytest.approx(1.0)


def test_streaming_mae_takes_the_absolute_value_of_each_error_before_averaging():
    # Errors of both signs within a sample: |mean(e)| = 1 would pass every same-sign test.
    metric = StreamingMAE()
    metric.update_state([[0.0, 0.0]], [[1.0, -3.0]])
    assert float(metric.result()) == pytest.approx(2.0)


def test_streaming_mae_applies_sample_weights():
    metric = StreamingMAE()
    metric.update_state([[0.0], [0.0]], [[1.0], [4.0]], sample_weight=[3.0, 1.0])
    assert float(metric.result()) == pytest.approx((3 * 1 + 1 * 4) / 4)


def test_streaming_mae_reset_state_clears_the_running_totals():
    metric = StreamingMAE()
    metric.update_state([[0.0]], [[5.0]])
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state([[0.0]], [[1.0]])
    assert float(metric.result()) == 1.0


def test_streaming_mae_keeps_state_in_two_float32_variables():
    metric = StreamingMAE()
    assert metric.name == "mae"
    assert [v.name for v in metric.variables] == ["total", "count"]
    metric.update_state([[0.0]], keras.ops.cast([[2.0]], "bfloat16"))
    assert keras.backend.standardize_dtype(metric.result().dtype) == "float32"


def test_streaming_mae_round_trips_through_keras_serialization():
    revived = keras.metrics.get(keras.metrics.serialize(StreamingMAE(name="val_mae")))
    assert isinstance(revived, StreamingMAE)
    assert revived.get_config() == {"name": "val_mae", "dtype": "float32"}
    assert StreamingMAE.from_config(revived.get_config()).name == "val_mae"
    np.testing.assert_array_equal(revived.result(), 0.0)


def test_streaming_accuracy_is_exact_over_uneven_batches():
    metric = StreamingAccuracy()
    metric.update_state([0, 1, 2], [[5.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 0.0, 9.0]])  # 2 of 3
    metric.update_state([[1]], [[0.0, 2.0, 1.0]])  # 1 of 1, labels as a column
    assert float(metric.result()) == pytest.approx(3 / 4)
    assert float(metric.result()) != pytest.approx((2 / 3 + 1) / 2)  # not the mean of means


def test_streaming_accuracy_applies_sample_weights_and_resets():
    metric = StreamingAccuracy()
    metric.update_state([0, 1], [[1.0, 0.0], [1.0, 0.0]], sample_weight=[3.0, 1.0])
    assert float(metric.result()) == pytest.approx(3 / 4)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state([1], [[0.0, 1.0]])
    assert float(metric.result()) == 1.0


def test_streaming_accuracy_round_trips_through_keras_serialization():
    metric = StreamingAccuracy(name="top1")
    revived = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(revived) is StreamingAccuracy and revived.name == "top1"


def test_streaming_mae_divides_by_weights_that_sum_below_one():
    # total / max(count, 1) would report 1.0 here: (0.25 * 1 + 0.25 * 3) / 0.5 = 2.0
    metric = StreamingMAE()
    metric.update_state([[0.0], [0.0]], [[1.0], [3.0]], sample_weight=[0.25, 0.25])
    assert float(metric.result()) == pytest.approx(2.0)
    accuracy = StreamingAccuracy()
    accuracy.update_state([0, 1], [[0.9, 0.1], [0.9, 0.1]], sample_weight=[0.1, 0.3])
    assert float(accuracy.result()) == pytest.approx(0.25)  # 0.1 of 0.4
