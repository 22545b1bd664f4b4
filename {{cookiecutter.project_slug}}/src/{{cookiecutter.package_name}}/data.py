"""Arrays in, tf.data pipelines out: the input side every task shares.

A task (`tasks/`) supplies its train and held-out arrays (made in code, loaded from a package, or
read from an `.npz` with `data.path`); this module turns them into the pipelines the loop reads
(`ArraySource`). Data larger than memory streams from sharded files instead (`shards/`,
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

import contextlib
import os
import zipfile
from typing import NamedTuple

import numpy as np

from .errors import RunError
from .storage import readable_size


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


# What a task learns from: bool, integer and floating-point arrays (numpy's kinds b, i, u, f).
# Complex numbers would lose their imaginary part in a cast, objects cannot become tensors.
LEARNABLE_KINDS = "biuf"


def check_dtype(name: str, dtype: np.dtype, source: str) -> None:
    """Refuses (RunError, one line) an array a task cannot learn from, naming it and its dtype."""
    if dtype.kind not in LEARNABLE_KINDS:
        raise RunError(
            f"{source}: {name} has dtype {dtype}; a task learns from bool, integer or "
            "floating-point arrays (convert it first, e.g. complex numbers into two float columns)"
        )


def check_dtypes(arrays: Arrays, source: str) -> None:
    """`check_dtype` on every array of `arrays` (named arrays as `x_train.<name>`...)."""
    for field in Arrays._fields:
        for name, array in leaves(getattr(arrays, field), field):
            check_dtype(name, np.asarray(array).dtype, source)


def memory_bytes() -> int | None:
    """The memory this process may use: the machine's, or less under a limit (`ulimit -v`)."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # AttributeError: Windows
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        import resource
    except ImportError:  # Windows: no process limits to read
        return min(limits, default=None)
    for kind in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft = resource.getrlimit(getattr(resource, kind))[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    return min(limits, default=None)


def npz_headers(npz) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """`{key: (shape, dtype)}` of every array of an open `.npz`, read from the headers alone."""
    from numpy.lib import format as npy

    headers = {}
    for key in npz.files:
        with npz.zip.open(f"{key}.npy") as file:
            version = npy.read_magic(file)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(file)
        headers[key] = (tuple(shape), np.dtype(dtype))
    return headers


def check_npz_headers(path: str, headers: dict) -> None:
    """Refuses, before any array is read, a dtype no task learns from and arrays that declare
    more bytes than this process may use."""
    source = f"data.path={path}"
    sizes = {}
    for key, (shape, dtype) in headers.items():
        check_dtype(key, dtype, source)
        sizes[key] = int(np.prod(shape, dtype=object)) * dtype.itemsize
    memory = memory_bytes()
    total = sum(sizes.values())
    if memory and total > memory:
        key = max(sizes, key=sizes.get)
        shape, dtype = headers[key]
        declared, allowed = readable_size(total), readable_size(memory)
        raise RunError(
            f"{source}: its arrays declare {declared} ({key}: shape {shape} {dtype}), more than "
            f"the {allowed} of memory this process may use; stream data larger than memory "
            "from shards (prepare writes them, data.files reads them)"
        )


def load_npz(path: str) -> Arrays:
    """The four arrays of an `.npz` (`x_train`, `y_train`, `x_test`, `y_test`), dtypes kept: the
    task casts and checks them (`Task.check_arrays`). Named inputs or targets are stored as
    `x_train.<name>`, `y_train.<name>`... and come back as dicts. Their headers are read first:
    a dtype no task learns from (complex, object, text...) or arrays larger than memory are
    refused before anything is loaded."""
    expected = "expected an .npz with x_train, y_train, x_test, y_test"
    if os.path.isdir(path):
        raise RunError(f"data.path={path}: is a directory, not a file ({expected})")
    if not os.path.isfile(path):
        raise RunError(f"data.path={path}: no such file ({expected})")
    if not zipfile.is_zipfile(path):
        raise RunError(
            f"data.path={path}: not an .npz archive (numpy.savez writes one, with x_train, "
            "y_train, x_test, y_test)"
        )
    try:
        with np.load(path) as npz:
            check_npz_headers(path, npz_headers(npz))
            found = {}
            for key in npz.files:
                field, _, name = key.partition(".")
                if name:
                    found.setdefault(field, {})[name] = np.asarray(npz[key])
                else:
                    found[field] = np.asarray(npz[key])
            return Arrays(*(found[key] for key in Arrays._fields))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
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
        check_dtypes(arrays, description)  # also arrays a task makes in code
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
