import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.autodiff import naive_softplus, stable_softplus


def gradient(function, z):
    z = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        value = function(z)
    return tape.gradient(value, z)


def test_gradient_tape_matches_hand_derivatives_of_a_polynomial():
    w1, w2 = tf.Variable(5.0), tf.Variable(3.0)
    with tf.GradientTape() as tape:
        value = 3 * w1**2 + 2 * w1 * w2  # d/dw1 = 6 w1 + 2 w2 = 36, d/dw2 = 2 w1 = 10
    assert [float(g) for g in tape.gradient(value, [w1, w2])] == [36.0, 10.0]


def test_stable_softplus_equals_naive_softplus_where_both_are_finite():
    z = np.linspace(-20, 20, 41, dtype=np.float32)
    np.testing.assert_allclose(stable_softplus(z), naive_softplus(z), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("z", [-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0])
def test_custom_gradient_matches_finite_differences(z):
    step = 1e-5
    numeric = (
        stable_softplus(tf.constant(z + step, tf.float64))
        - stable_softplus(tf.constant(z - step, tf.float64))
    ) / (2 * step)
    np.testing.assert_allclose(
        float(gradient(stable_softplus, np.float64(z))), float(numeric), rtol=1e-7, atol=1e-10
    )


def test_custom_gradient_is_finite_at_100_where_the_naive_one_is_nan():
    assert np.isnan(float(gradient(naive_softplus, np.float32(100.0))))
    assert float(gradient(stable_softplus, np.float32(100.0))) == 1.0
    assert float(stable_softplus(tf.constant(100.0))) == 100.0
    assert float(gradient(stable_softplus, np.float32(-100.0))) == 0.0


def test_custom_gradient_scales_the_upstream_gradient():
    z = tf.constant([0.0, 100.0])
    with tf.GradientTape() as tape:
        tape.watch(z)
        value = tf.reduce_sum(3.0 * stable_softplus(z))
    np.testing.assert_allclose(tape.gradient(value, z), [1.5, 3.0])


@pytest.mark.parametrize("z", [-30.0, -60.0])
def test_stable_softplus_keeps_the_tiny_values_of_very_negative_inputs(z):
    # softplus(z) ~ exp(z) there: log(1 + exp(z)) rounds 1 + exp(z) to 1 and returns 0.
    got = float(stable_softplus(tf.constant(z)))
    assert got == pytest.approx(float(np.log1p(np.exp(np.float64(z)))), rel=1e-5)
    assert got > 0
