"""The shared input side: `.npz` files in, exact and resumable tf.data pipelines out."""

import re
import zipfile

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import (
    Arrays,
    ArraySource,
    eval_dataset,
    load_npz,
    train_dataset,
)
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


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.arange(64) + 1j, "complex128"),  # a cast would drop the imaginary part
        (np.array([{"a": 1}] * 64, dtype=object), "object"),
        (np.array(["one"] * 64), "<U3"),
    ],
    ids=["complex", "object", "text"],
)
def test_an_array_no_task_learns_from_is_refused_naming_it_and_its_dtype(tmp_path, array, dtype):
    path = tmp_path / "data.npz"
    x, _ = arrays()
    np.savez(path, x_train=x, y_train=array, x_test=x[:8], y_test=array[:8])
    with pytest.raises(RunError) as refused:
        load_npz(str(path))
    assert str(refused.value) == (
        f"data.path={path}: y_train has dtype {dtype}; a task learns from bool, integer or "
        "floating-point arrays (convert it first, e.g. complex numbers into two float columns)"
    )
    with pytest.raises(RunError, match=f"^task=mine: x_test has dtype {re.escape(dtype)};"):
        ArraySource(Arrays(x, x[:, 0], array[:8], x[:8, 0]), "task=mine")  # made in code


def test_an_npz_declaring_more_than_memory_is_refused_before_it_is_read(tmp_path):
    from numpy.lib import format as npy

    path = tmp_path / "data.npz"
    x, y = arrays()
    np.savez(path, y_train=y, x_test=x[:8], y_test=y[:8])
    with zipfile.ZipFile(path, "a") as archive, archive.open("x_train.npy", "w") as file:
        header = {"descr": "<f4", "fortran_order": False, "shape": (400_000_000_000, 4)}
        npy.write_array_header_1_0(file, header)  # a header, and no data behind it
    with pytest.raises(RunError) as refused:
        load_npz(str(path))
    said = str(refused.value)
    assert said.startswith(
        f"data.path={path}: its arrays declare 6.4 TB (x_train: shape (400000000000, 4) "
        "float32), more than the "
    )
    assert said.endswith(
        "stream data larger than memory from shards (prepare writes them, data.files reads them)"
    )


def test_a_directory_as_data_path_is_named_as_a_directory(tmp_path):
    with pytest.raises(RunError, match=f"^data.path={tmp_path}: is a directory, not a file"):
        load_npz(str(tmp_path))
