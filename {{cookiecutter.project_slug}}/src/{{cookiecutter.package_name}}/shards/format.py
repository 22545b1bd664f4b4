"""The shards' format: what a record holds, how examples are grouped into records and shards.

Each record is a `tf.train.Example` holding up to 4096 consecutive examples (about 1 MiB at
most): their row ids (int64), and their `x` and `y` as raw little-endian bytes, whose dtypes and
shapes `dataset.json` records.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from ..data import leaves

FORMAT = "tfrecord-example-raw-v1"
SPLITS = {"train": ("x_train", "y_train"), "eval": ("x_test", "y_test")}
META = "dataset.json"
# Examples per record: at most this many, and about RECORD_BYTES of them.
MAX_EXAMPLES_PER_RECORD = 4096
RECORD_BYTES = 1024 * 1024
# Training data per shard when `data.shards=0`.
SHARD_BYTES = 64 * 2**20


class Feature(NamedTuple):
    dtype: str
    shape: tuple[int, ...]


def shard_sizes(num_examples: int, num_shards: int) -> list[int]:
    """Example counts of `num_shards` consecutive shards, differing by at most one.

    >>> shard_sizes(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(num_examples, num_shards)
    return [base + (index < extra) for index in range(num_shards)]


def examples_per_record(x, y) -> int:
    """Examples stored together in one record: up to 4096, and about 1 MiB at most.

    A record is the unit that is read, shuffled and decoded; one example per record made
    tf.data's per-element work slower than training the default task.
    """
    example_bytes = sum(a[:1].nbytes for _, a in leaves(x, "x") + leaves(y, "y"))
    return int(max(1, min(MAX_EXAMPLES_PER_RECORD, RECORD_BYTES // max(1, example_bytes))))


def checksum(path: str) -> dict:
    """`{"bytes": size, "sha256": hex digest}` of the file at `path`."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def encode_record(ids: np.ndarray, arrays: dict[str, np.ndarray]) -> bytes:
    """One `tf.train.Example` holding consecutive examples: their ids, and each array (`x`,
    `y`, or `x.<name>`...) as raw little-endian bytes (row-major, examples first)."""
    import tensorflow as tf

    def raw(values):
        little_endian = np.ascontiguousarray(values, values.dtype.newbyteorder("<"))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[little_endian.tobytes()]))

    feature = {
        "id": tf.train.Feature(int64_list=tf.train.Int64List(value=ids.tolist())),
        **{key: raw(values) for key, values in arrays.items()},
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Unsorted, a protobuf map is written in an order that changes from one process to the
    # next; sorted, a prepare's files, and so the runs on them, are the same in every process.
    return example.SerializeToString(deterministic=True)
