"""Tensors and operations: the TensorFlow basics every other module builds on.

Tensors are immutable, typed and shaped; operations broadcast like NumPy; `tf.Variable` is the
mutable kind that models train. TensorFlow never converts dtypes silently (a float64 NumPy
array stays float64, and adding it to a float32 tensor is an error), so cast on purpose.

>>> import numpy as np
>>> import tensorflow as tf
>>> t = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
>>> t.shape, t.dtype.name
(TensorShape([2, 3]), 'float32')
>>> t[:, 1].numpy()                       # indexing as in NumPy
array([2., 5.], dtype=float32)
>>> (t @ tf.transpose(t)).numpy()         # matrix product
array([[14., 32.],
       [32., 77.]], dtype=float32)
>>> tf.constant(np.array([1.0])).dtype.name   # NumPy's float64 is kept...
'float64'
>>> tf.cast(tf.constant(np.array([1.0])), tf.float32).dtype.name   # ...until cast
'float32'
>>> v = tf.Variable([1.0, 2.0])
>>> _ = v.assign_add([1.0, 1.0]); v.numpy()
array([2., 3.], dtype=float32)
"""

import tensorflow as tf


def standardize(x, axis=0, epsilon=1e-6):
    """Shifts and scales `x` to zero mean and unit variance along `axis`.

    Args:
        x: a float tensor or array.
        axis: the axis to standardize over (the batch axis by default).
        epsilon: added to the variance so constant columns do not divide by zero.

    Returns:
        A tensor of the shape and dtype of `x`.

    >>> standardize([[1.0], [3.0]]).numpy().round(3).tolist()
    [[-1.0], [1.0]]
    """
    x = tf.convert_to_tensor(x)
    mean, variance = tf.nn.moments(x, axes=[axis], keepdims=True)
    return (x - mean) / tf.sqrt(variance + epsilon)


def pairwise_squared_distances(a, b):
    """`||a_i - b_j||^2` for every row pair, by broadcasting rather than loops.

    Args:
        a: shape `(n, d)`.
        b: shape `(m, d)`.

    Returns:
        Shape `(n, m)`.

    >>> pairwise_squared_distances([[0.0, 0.0]], [[3.0, 4.0], [1.0, 0.0]]).numpy().tolist()
    [[25.0, 1.0]]
    """
    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)
