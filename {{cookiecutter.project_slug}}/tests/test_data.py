import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import eval_dataset, load_arrays, train_dataset
from {{ cookiecutter.package_name }}.errors import RunError


def arrays(seed=0):
    return load_arrays(input_dim=4, train_size=64, test_size=10, label_noise=0.1, seed=seed)


def test_default_task_is_deterministic_from_the_seed():
    np.testing.assert_array_equal(arrays(1).x_train, arrays(1).x_train)
    assert not np.array_equal(arrays(1).y_train, arrays(2).y_train)


def test_batch_of_a_step_does_not_depend_on_where_the_pipeline_starts():
    data = arrays()
    from_zero = list(train_dataset(data.x_train, data.y_train, 16, seed=3).take(9))
    from_five = list(train_dataset(data.x_train, data.y_train, 16, seed=3, start_step=5).take(4))
    for (x0, y0), (x5, y5) in zip(from_zero[5:], from_five):
        np.testing.assert_array_equal(x0, x5)
        np.testing.assert_array_equal(y0, y5)


def test_each_epoch_visits_every_example_once():
    data = arrays()
    batches = list(train_dataset(data.x_train, data.y_train, 16, seed=3).take(4))
    seen = np.concatenate([x.numpy() for x, _ in batches])
    assert sorted(map(tuple, seen)) == sorted(map(tuple, data.x_train))


def test_eval_dataset_keeps_the_short_last_batch():
    data = arrays()
    sizes = [len(x) for x, _ in eval_dataset(data.x_test, data.y_test, 4)]
    assert sizes == [4, 4, 2]


def test_own_data_loads_from_npz(tmp_path):
    path = tmp_path / "data.npz"
    data = arrays()
    np.savez(
        path,
        x_train=data.x_train,
        y_train=data.y_train[:, 0],
        x_test=data.x_test,
        y_test=data.y_test[:, 0],
    )
    loaded = load_arrays(4, 1, 1, 0.0, 0, path=str(path))
    np.testing.assert_array_equal(loaded.y_train, data.y_train)


def test_missing_data_file_is_one_clear_error(tmp_path):
    with pytest.raises(RunError, match="data.path=.*no such file"):
        load_arrays(4, 1, 1, 0.0, 0, path=str(tmp_path / "missing.npz"))
