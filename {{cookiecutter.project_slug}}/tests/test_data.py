"""The shared input side: `.npz` files in, exact and resumable tf.data pipelines out."""

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import eval_dataset, load_npz, train_dataset
from {{ cookiecutter.package_name }}.errors import RunError


def arrays(n=64):
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)  # row i holds distinct values
    return x, np.arange(n, dtype=np.int32)


def test_batch_of_a_step_does_not_depend_on_where_the_pipeline_starts():
    x, y = arrays()
    from_zero = list(train_dataset(x, y, 16, seed=3).take(9))
    from_five = list(train_dataset(x, y, 16, seed=3, start_step=5).take(4))
    for (x0, y0), (x5, y5) in zip(from_zero[5:], from_five):
        np.testing.assert_array_equal(x0, x5)
        np.testing.assert_array_equal(y0, y5)


def test_each_epoch_visits_every_example_once_and_keeps_pairs_together():
    x, y = arrays()
    batches = list(train_dataset(x, y, 16, seed=3).take(4))
    labels = np.concatenate([b.numpy() for _, b in batches])
    assert sorted(labels.tolist()) == list(range(64))
    for inputs, targets in batches:
        np.testing.assert_array_equal(inputs.numpy(), x[targets.numpy()])


def test_integer_targets_stay_integers_in_the_pipelines():
    x, y = arrays()
    _, targets = next(iter(train_dataset(x, y, 16, seed=0)))
    assert targets.dtype.name == "int32"
    _, targets = next(iter(eval_dataset(x, y, 16)))
    assert targets.dtype.name == "int32"


def test_eval_dataset_keeps_the_short_last_batch():
    x, y = arrays(10)
    sizes = [len(inputs) for inputs, _ in eval_dataset(x, y, 4)]
    assert sizes == [4, 4, 2]


def test_npz_arrays_load_with_their_dtypes(tmp_path):
    path = tmp_path / "data.npz"
    x, y = arrays()
    np.savez(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    loaded = load_npz(str(path))
    assert loaded.y_train.dtype == np.int32 and loaded.x_test.shape == (8, 4)
    np.testing.assert_array_equal(loaded.y_train, y)


def test_missing_data_file_is_one_clear_error(tmp_path):
    with pytest.raises(RunError, match="data.path=.*no such file"):
        load_npz(str(tmp_path / "missing.npz"))


def test_npz_without_an_array_is_one_clear_error(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.zeros((4, 2)))
    with pytest.raises(RunError, match="unreadable.*expected arrays x_train, y_train"):
        load_npz(str(path))


def test_a_file_that_is_not_an_npz_archive_says_so(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(RunError, match=r"data.npz: not an .npz archive \(numpy.savez writes"):
        load_npz(str(path))
