"""Data larger than memory: a task's examples in sharded TFRecord files, read streaming.

`python -m {{ cookiecutter.package_name }}.prepare data.files=data/regression` writes a task's
train and held-out splits (its own data, or `data.path`) as `train-00000-of-00004.tfrecord`,
..., `eval-00000-of-00004.tfrecord`, ... and a `dataset.json` describing them; `train
data.files=data/regression` (the directory, or a glob of its shards) trains on them. Each record is
a `tf.train.Example` holding up to 4096 consecutive examples (about 1 MiB at most): their row ids
(int64), and their `x` and `y` as raw little-endian bytes, whose dtypes and shapes `dataset.json`
records; any reader of TFRecords can read them back. Training rows are written in a shuffled
order, so a record holds examples from anywhere in the split. The same data and seed give the
same bytes in any process.

Reading holds about `data.shuffle_buffer` training examples (whole records) plus a few batches in
memory, whatever the data set's size. Across workers (`distribute=multi_worker_mirrored`) each
worker reads only its own files when the shard count is a multiple of the worker count, and
otherwise reads every file and keeps every W-th example of each record; either way, within each
of its epochs a worker sees each of its examples once and no two workers share one.

The stream of each input pipeline is a pure function of the seed and the position: epoch `e`
reads its files in an order of `(seed, e)`, shuffles their records in a buffer seeded by
`(seed, e)` and permutes the examples of each record by `(seed, e, record)`. A run resumed at step
`s` starts the stream at its epoch and drops the examples before its position (decoding at most
one epoch), so it sees the batches an uninterrupted run would, without storing an iterator in
the checkpoint.
"""

from .format import FORMAT, META, SPLITS, Feature, examples_per_record, shard_sizes
from .reader import ShardSource
from .writer import write_shards

__all__ = [
    "FORMAT",
    "META",
    "SPLITS",
    "Feature",
    "ShardSource",
    "examples_per_record",
    "shard_sizes",
    "write_shards",
]
