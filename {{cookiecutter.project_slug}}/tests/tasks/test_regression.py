"""The regression task: its data made in code, and what it accepts from an `.npz`."""

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.tasks.regression import RegressionConfig, RegressionTask


def task(**config):
    return RegressionTask(RegressionConfig(**{"train_size": 64, "test_size": 16, **config}), 0)


def test_targets_follow_the_documented_function_without_noise():
    arrays = task(label_noise=0.0, input_dim=3).arrays()
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal((2, 3)) / np.sqrt(3)
    x = arrays.x_train
    expected = np.sin(2.0 * x @ w) + 0.5 * (x @ v) ** 2
    np.testing.assert_allclose(arrays.y_train[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert arrays.x_train.shape == (64, 3) and arrays.y_test.shape == (16, 1)


def npz(tmp_path, y_train):
    x = np.zeros((len(y_train), 3), np.float64)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x, y_train=y_train, x_test=x[:2], y_test=y_train[:2])
    return str(path)


def test_one_dimensional_npz_targets_become_a_column_of_float32(tmp_path):
    arrays = task().arrays(npz(tmp_path, np.arange(5)))
    assert arrays.y_train.shape == (5, 1) and arrays.y_train.dtype == np.float32
    assert arrays.x_train.dtype == np.float32


@pytest.mark.parametrize("shape", [(5, 2), (5, 1, 1)], ids=["two-targets", "extra-axis"])
def test_targets_that_would_broadcast_are_refused(tmp_path, shape):
    with pytest.raises(RunError, match=r"y_train has shape .*expected \(n,\) or \(n, 1\)"):
        task().arrays(npz(tmp_path, np.zeros(shape)))


def test_nan_in_the_data_is_named_as_bad_data(tmp_path):
    with pytest.raises(RunError, match="y_train holds NaN"):
        task().arrays(npz(tmp_path, np.array([0.0, np.nan, 1.0])))
