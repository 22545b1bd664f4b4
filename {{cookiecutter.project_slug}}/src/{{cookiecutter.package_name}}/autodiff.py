"""Custom gradients: a softplus whose gradient stays finite where autodiff's overflows.

``naive_softplus(z) = log(exp(z) + 1)``: at ``z = 100`` float32 ``exp(z)`` is ``inf`` and the
autodiff gradient ``exp(z) / (exp(z) + 1)`` is ``inf / inf = nan``. ``stable_softplus``
computes the same function as ``log(1 + exp(-|z|)) + max(z, 0)`` and supplies its gradient,
``1 - 1 / (1 + exp(z))``, by hand with ``tf.custom_gradient``.

>>> z = tf.constant(100.0)
>>> with tf.GradientTape(persistent=True) as tape:
...     tape.watch(z)
...     naive, stable = naive_softplus(z), stable_softplus(z)
>>> float(tape.gradient(naive, z)), float(tape.gradient(stable, z)), float(stable)
(nan, 1.0, 100.0)
"""

import tensorflow as tf


def naive_softplus(z):
    """Softplus written as ``log(exp(z) + 1)``, differentiated by autodiff.

    Args:
        z: Float tensor.

    Returns:
        `log(exp(z) + 1)`, which overflows to `inf` (gradient `nan`) for large `z`.

    Example:

    >>> round(float(naive_softplus(tf.constant(0.0))), 4)  # log(2)
    0.6931
    """
    return tf.math.log(tf.exp(z) + 1.0)


@tf.custom_gradient
def stable_softplus(z):
    """Numerically stable softplus with a hand-written gradient.

    Args:
        z: Float tensor.

    Returns:
        `softplus(z)` and, for autodiff, the gradient function
        `upstream * (1 - 1 / (1 + exp(z)))`, which is finite for every `z`.

    Example:

    >>> round(float(stable_softplus(tf.constant(0.0))), 4)  # log(2)
    0.6931
    """

    # exercise begin: custom_gradient
    # Exercise `custom_gradient` (`tf.custom_gradient`): define `gradient(upstream)` inside this
    # function, returning the gradient above, and return the pair ``(log1p(exp(-|z|)) + max(z, 0),
    # gradient)``: both terms stay finite for every `z`.
    def gradient(upstream):
        return upstream * (1.0 - 1.0 / (1.0 + tf.exp(z)))

    return tf.math.log1p(tf.exp(-tf.abs(z))) + tf.maximum(z, 0.0), gradient
    # exercise end
