"""The image-classification task: the bundled digits, integer labels kept, bad data refused."""

import builtins

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.tasks.image_classification import (
    ImageClassificationConfig,
    ImageClassificationTask,
)


def task(**config):
    return ImageClassificationTask(ImageClassificationConfig(**config), seed=0)


def test_digits_are_scaled_images_with_integer_labels_split_by_test_size():
    arrays = task(test_size=300).arrays()
    assert arrays.x_train.shape == (1497, 8, 8, 1) and arrays.x_test.shape == (300, 8, 8, 1)
    assert arrays.x_train.dtype == np.float32
    assert arrays.x_train.min() == 0.0 and arrays.x_train.max() == 1.0  # 0..16 scaled
    assert arrays.y_train.dtype == np.int32 and arrays.y_train.shape == (1497,)
    assert sorted(set(arrays.y_test.tolist())) == list(range(10))  # every class held out


def npz(tmp_path, y, x=None):
    x = np.zeros((len(y), 4, 4)) if x is None else x
    path = tmp_path / "images.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    return str(path)


def test_grey_images_get_a_channel_axis_and_column_labels_a_flat_one(tmp_path):
    arrays = task(num_classes=3).arrays(npz(tmp_path, np.array([[0], [2], [1]], np.int64)))
    assert arrays.x_train.shape == (3, 4, 4, 1)
    assert arrays.y_train.tolist() == [0, 2, 1] and arrays.y_train.dtype == np.int32


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0.0, 1.0]), "expected integer class ids"),
        (np.array([0, 10]), r"class ids 0\.\.10; expected 0\.\.9"),
        (np.array([-1, 3]), r"class ids -1\.\.3"),
    ],
    ids=["float-labels", "too-large", "negative"],
)
def test_labels_that_are_not_class_ids_are_refused(tmp_path, labels, message):
    with pytest.raises(RunError, match=message):
        task().arrays(npz(tmp_path, labels))


def test_without_scikit_learn_the_error_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(RunError, match=r"scikit-learn, which is not installed; pip install"):
        task().arrays()


def test_test_size_leaving_no_training_images_is_refused():
    with pytest.raises(RunError, match="task.test_size=1797: the digits hold 1797 images"):
        task(test_size=1797).arrays()
