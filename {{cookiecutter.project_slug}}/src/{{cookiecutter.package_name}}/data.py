"""Arrays in, tf.data pipelines out: the input side every task shares.

A task (`tasks/`) supplies its train and held-out arrays (made in code, loaded from a package, or
read from an `.npz` with `data.path`); this module turns them into the pipelines the loop reads
(`ArraySource`). Data larger than memory streams from sharded files instead (`shards.py`,
`data.files`); both sources give the loop the same two pipelines.

The training pipeline is a pure function of the step: batch `s` is slice `s % steps_per_epoch` of
a permutation seeded by `(seed, s // steps_per_epoch)`. A run resumed at step `s` therefore sees
exactly the batches an uninterrupted run would, under every distribution strategy, without
storing an iterator in the checkpoint.

>>> import numpy as np
>>> arrays = Arrays(np.zeros((32, 4)), np.zeros(32, np.int32), np.zeros((8, 4)), np.zeros(8))
>>> [len(split) for split in arrays]
[32, 32, 8, 8]
"""

from __future__ import annotations

import os
import zipfile
from typing import NamedTuple

import numpy as np

from .errors import RunError


class Arrays(NamedTuple):
    """A task's data: rows are examples; `x_*` are model inputs, `y_*` targets (any dtype).

    Each is one array, or a dict of named arrays with the same number of rows (a model with
    several inputs or outputs).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def leaves(nest, prefix: str) -> list[tuple[str, np.ndarray]]:
    """`[(name, array)]` of one array (`[(prefix, array)]`) or a dict of named arrays
    (`[(prefix.name, array)]`, in key order): how errors, `.npz` files and shards name them."""
    if isinstance(nest, dict):
        return [(f"{prefix}.{key}", nest[key]) for key in sorted(nest)]
    return [(prefix, nest)]


def num_rows(nest) -> int:
    """The number of examples of one array or a dict of named arrays."""
    return len(leaves(nest, "")[0][1])


def map_arrays(function, nest):
    """`function` applied to one array, or to each array of a dict (the dict kept)."""
    if isinstance(nest, dict):
        return {key: function(value) for key, value in nest.items()}
    return function(nest)


def load_npz(path: str) -> Arrays:
    """The four arrays of an `.npz` (`x_train`, `y_train`, `x_test`, `y_test`), dtypes kept: the
    task casts and checks them (`Task.check_arrays`). Named inputs or targets are stored as
    `x_train.<name>`, `y_train.<name>`... and come back as dicts."""
    if not os.path.isfile(path):
        raise RunError(
            f"data.path={path}: no such file (expected an .npz with x_train, y_train, "
            "x_test, y_test)"
        )
    if not zipfile.is_zipfile(path):
        raise RunError(
            f"data.path={path}: not an .npz archive (numpy.savez writes one, with x_train, "
            "y_train, x_test, y_test)"
        )
    try:
        with np.load(path) as npz:
            found = {}
            for key in npz.files:
                field, _, name = key.partition(".")
                if name:
                    found.setdefault(field, {})[name] = np.asarray(npz[key])
                else:
                    found[field] = np.asarray(npz[key])
            return Arrays(*(found[key] for key in Arrays._fields))
    except (KeyError, ValueError, OSError) as error:
        raise RunError(
            f"data.path={path}: unreadable ({str(error).splitlines()[0]}); expected "
            "arrays x_train, y_train, x_test, y_test"
        ) from None


def save_npz(path: str, arrays: Arrays) -> None:
    """Writes `arrays` as `load_npz` reads them back (named arrays as `x_train.<name>`...)."""
    np.savez(
        path,
        **{
            name: a for field in Arrays._fields for name, a in leaves(getattr(arrays, field), field)
        },
    )


def train_dataset(x, y, global_batch_size: int, seed: int, start_step: int = 0):
    """An endless dataset of global batches, batch `s` for step `s`, starting at `start_step`.

    Each epoch gathers its permutation of the arrays once and slices it into batches: one
    extra copy of the training arrays in memory, and no per-step work (a shuffle plus gathers
    in a per-step `map` made a small model's step wait for its input).
    """
    import tensorflow as tf

    num_examples = num_rows(x)
    if num_examples < global_batch_size:
        raise RunError(
            f"train.batch_size={global_batch_size}: larger than the {num_examples} "
            "training examples"
        )
    steps_per_epoch = num_examples // global_batch_size
    x, y = tf.nest.map_structure(tf.constant, (x, y))

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_examples), seed=tf.stack([tf.cast(seed, tf.int64), epoch])
        )
        # (steps_per_epoch, global_batch_size): row `p` holds the examples of position `p`.
        indices = tf.reshape(
            order[: steps_per_epoch * global_batch_size], (steps_per_epoch, global_batch_size)
        )
        batches = tf.nest.map_structure(lambda array: tf.gather(array, indices), (x, y))
        return tf.data.Dataset.from_tensor_slices(batches)

    first_epoch, position = divmod(start_step, steps_per_epoch)
    dataset = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
    dataset = dataset.flat_map(epoch_batches).skip(position)
    return _distributable(dataset.prefetch(tf.data.AUTOTUNE))


class ArraySource:
    """Training and held-out pipelines over arrays in memory (the task's own, or `data.path`)."""

    def __init__(self, arrays: Arrays, description: str):
        self.arrays, self.description = arrays, description
        self.example_inputs, self.example_targets = arrays.x_train, arrays.y_train
        self.num_train_examples = num_rows(arrays.x_train)
        self.num_eval_examples = num_rows(arrays.x_test)

    def train_batches(self, strategy, global_batch_size: int, seed: int, start_step: int):
        """The distributed dataset of global batches, batch `s` for step `s`, from `start_step`."""
        x, y = self.arrays.x_train, self.arrays.y_train
        dataset = train_dataset(x, y, global_batch_size, seed, start_step)
        return strategy.experimental_distribute_dataset(dataset)

    def eval_dataset(self, global_batch_size: int):
        return eval_dataset(self.arrays.x_test, self.arrays.y_test, global_batch_size)


def eval_dataset(x, y, global_batch_size: int):
    """The held-out split once through, in order, cached; the last batch may be short."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size).cache()
    return _distributable(dataset.prefetch(tf.data.AUTOTUNE))


def _distributable(dataset):
    """Shard by data, not files, when a multi-worker strategy splits the dataset.

    Autotuning is off: these in-memory pipelines trained no faster with it, and deleting an
    autotuned iterator waits for its optimisation thread, which delayed the end of a run.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    options.autotune.enabled = False
    return dataset.with_options(options)
