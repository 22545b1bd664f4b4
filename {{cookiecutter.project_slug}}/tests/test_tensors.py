import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.tensors import pairwise_squared_distances, standardize


def test_standardize_gives_zero_mean_unit_variance_columns():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], np.float32)
    out = standardize(x).numpy()
    np.testing.assert_allclose(out.mean(axis=0), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), [1.0, 1.0], atol=1e-5)


def test_pairwise_distances_match_a_loop():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    expected = [[((x - y) ** 2).sum() for y in b] for x in a]
    np.testing.assert_allclose(pairwise_squared_distances(a, b).numpy(), expected, rtol=1e-6)


def test_tensorflow_refuses_to_mix_dtypes_silently():
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError)):
        tf.constant([1.0], tf.float32) + tf.constant([1.0], tf.float64)
