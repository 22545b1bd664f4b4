"""The default task and its tf.data pipelines; the place to plug in your own data.

The default task is regression made in code, deterministic from the seed (nothing is ever
downloaded): `x ~ N(0, 1)` of shape `(n, input_dim)`, and
`y = sin(2 x.w) + 0.5 (x.v)^2 + label_noise * N(0, 1)`, shape `(n, 1)`.

Your own data: set `data.path=/path/to/data.npz` holding float arrays `x_train`, `y_train`,
`x_test`, `y_test` (rows are examples), or replace `load_arrays` for anything else.

The training pipeline is a pure function of the step: batch `s` is slice `s % steps_per_epoch` of
a permutation seeded by `(seed, s // steps_per_epoch)`. A run resumed at step `s` therefore sees
exactly the batches an uninterrupted run would, under every distribution strategy, without
storing an iterator in the checkpoint.

>>> arrays = load_arrays(input_dim=4, train_size=32, test_size=8, label_noise=0.0, seed=0)
>>> arrays.x_train.shape, arrays.y_train.shape, arrays.x_test.shape
((32, 4), (32, 1), (8, 4))
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from .errors import RunError


class Arrays(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_task(
    input_dim: int, size: int, label_noise: float, rng: np.random.Generator, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draws `size` examples of the default regression task."""
    x = rng.standard_normal((size, input_dim)).astype(np.float32)
    w, v = directions
    y = np.sin(2.0 * x @ w) + 0.5 * (x @ v) ** 2
    y = y + label_noise * rng.standard_normal(size)
    return x, y.astype(np.float32)[:, None]


def load_arrays(
    input_dim: int, train_size: int, test_size: int, label_noise: float, seed: int, path: str = ""
) -> Arrays:
    """Returns the train and held-out arrays: from `path` if given, else the default task."""
    if path:
        return _load_npz(path)
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((2, input_dim)) / np.sqrt(input_dim)
    x_train, y_train = make_task(input_dim, train_size, label_noise, rng, directions)
    x_test, y_test = make_task(input_dim, test_size, label_noise, rng, directions)
    return Arrays(x_train, y_train, x_test, y_test)


def arrays_for(cfg) -> Arrays:
    """The arrays a run's config asks for (`cfg.data` and `cfg.seed`)."""
    data = cfg.data
    return load_arrays(
        data.input_dim, data.train_size, data.test_size, data.label_noise, cfg.seed, data.path
    )


def _load_npz(path: str) -> Arrays:
    if not os.path.isfile(path):
        raise RunError(
            f"data.path={path}: no such file (expected an .npz with x_train, y_train, "
            "x_test, y_test)"
        )
    try:
        with np.load(path) as npz:
            arrays = Arrays(*(np.asarray(npz[key], np.float32) for key in Arrays._fields))
    except (KeyError, ValueError, OSError) as error:
        raise RunError(
            f"data.path={path}: unreadable ({str(error).splitlines()[0]}); expected "
            "arrays x_train, y_train, x_test, y_test"
        ) from None
    if arrays.y_train.ndim == 1:
        arrays = Arrays(
            arrays.x_train, arrays.y_train[:, None], arrays.x_test, arrays.y_test[:, None]
        )
    return arrays


def train_dataset(x, y, global_batch_size: int, seed: int, start_step: int = 0):
    """An endless dataset of global batches, batch `s` for step `s`, starting at `start_step`.

    Each epoch gathers its permutation of the arrays once and slices it into batches: one
    extra copy of the training arrays in memory, and no per-step work (a shuffle plus gathers
    in a per-step `map` made the default task 15-27% slower than one constant batch on 2 cores).
    """
    import tensorflow as tf

    num_examples = len(x)
    if num_examples < global_batch_size:
        raise RunError(
            f"train.batch_size={global_batch_size}: larger than the {num_examples} "
            "training examples"
        )
    steps_per_epoch = num_examples // global_batch_size
    x, y = tf.constant(x), tf.constant(y)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_examples), seed=tf.stack([tf.cast(seed, tf.int64), epoch])
        )
        # (steps_per_epoch, global_batch_size): row `p` holds the examples of position `p`.
        indices = tf.reshape(
            order[: steps_per_epoch * global_batch_size], (steps_per_epoch, global_batch_size)
        )
        return tf.data.Dataset.from_tensor_slices((tf.gather(x, indices), tf.gather(y, indices)))

    first_epoch, position = divmod(start_step, steps_per_epoch)
    dataset = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
    dataset = dataset.flat_map(epoch_batches).skip(position)
    return _distributable(dataset.prefetch(tf.data.AUTOTUNE))


def eval_dataset(x, y, global_batch_size: int):
    """The held-out split once through, in order, cached; the last batch may be short."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size).cache()
    return _distributable(dataset.prefetch(tf.data.AUTOTUNE))


def _distributable(dataset):
    """Shard by data, not files, when a multi-worker strategy splits the dataset.

    Autotuning is off: these in-memory pipelines trained no faster with it, and deleting an
    autotuned iterator waited 0.5-2.5 s for its optimisation thread at the end of a run.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    options.autotune.enabled = False
    return dataset.with_options(options)
