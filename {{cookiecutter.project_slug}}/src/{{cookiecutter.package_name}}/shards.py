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

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import NamedTuple

import numpy as np

from .data import Arrays, leaves, num_rows
from .errors import RunError
from .storage import storage_cause

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


# -- writing ---------------------------------------------------------------------------------------
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


def write_shards(arrays: Arrays, directory: str, num_shards: int, source: str, seed: int) -> dict:
    """Writes both splits of `arrays` into `directory` (which must not hold files yet) and
    returns its `dataset.json`. All or nothing: files are written beside it, then moved in.

    `num_shards` training shards (0: one per `SHARD_BYTES`), and as many held-out ones.

    Training rows are written in an order shuffled by `seed` (each keeps its row `id`), so a
    record holds examples from anywhere in the split; held-out rows keep their order.
    """
    import tensorflow as tf

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise RunError(f"data.files={directory}: is a file, not a directory")
    if os.path.isdir(directory) and os.listdir(directory):
        raise RunError(
            f"data.files={directory}: already holds files; prepare into a new or empty directory"
        )
    parent = os.path.dirname(os.path.abspath(directory))
    prefix = f".prepare-{os.path.basename(os.path.abspath(directory))}-"
    staging = None
    try:
        os.makedirs(parent, exist_ok=True)
        _remove_stale_staging(parent, prefix)
        staging = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
        meta = {"format": FORMAT, "source": source, "splits": {}}
        for split, (x_name, y_name) in SPLITS.items():
            x, y = getattr(arrays, x_name), getattr(arrays, y_name)
            # One feature per array: `x` and `y`, or `x.<name>` for each named input or target.
            named = leaves(x, "x") + leaves(y, "y")
            features = {}
            for key, values in named:
                if values.dtype.kind not in "biuf":
                    shown = (x_name if key[0] == "x" else y_name) + key[1:]
                    raise RunError(
                        f"{source}: {shown} has dtype {values.dtype}; TFRecord shards hold "
                        "numbers (bool, int, uint or float arrays)"
                    )
                features[key] = {"dtype": values.dtype.str, "shape": values.shape[1:]}
            total = num_rows(x)
            if split == "train":
                rows = np.random.default_rng(seed).permutation(total)
                data_bytes = sum(values.nbytes for _, values in named)
                wanted = num_shards or max(1, math.ceil(data_bytes / SHARD_BYTES))
            else:
                rows = np.arange(total)
            per_record = examples_per_record(x, y)
            files, checksums, start = {}, {}, 0
            count = min(wanted, total)
            for index, size in enumerate(shard_sizes(total, count)):
                name = f"{split}-{index:05d}-of-{count:05d}.tfrecord"
                with tf.io.TFRecordWriter(os.path.join(staging, name)) as writer:
                    for first in range(start, start + size, per_record):
                        ids = rows[first : min(first + per_record, start + size)]
                        writer.write(_record(ids, {key: values[ids] for key, values in named}))
                files[name] = size
                checksums[name] = _checksum(os.path.join(staging, name))
                start += size
            meta["splits"][split] = {
                "features": features,
                "examples": total,
                "examples_per_record": per_record,
                "files": files,
                "checksums": checksums,
            }
        with open(os.path.join(staging, META), "w", encoding="utf-8") as file:
            json.dump(meta, file, indent=2)
            file.write("\n")
        if os.path.isdir(directory):
            os.rmdir(directory)  # empty, checked above
        os.replace(staging, directory)
    except (OSError, tf.errors.OpError) as error:  # no space, read-only, a file in the way...
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        cause = storage_cause(error, staging or directory)
        raise RunError(
            f"data.files={directory}: could not be written ({cause}); nothing was written there"
        ) from None
    except BaseException:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _remove_stale_staging(parent: str, prefix: str) -> None:
    """Removes what a killed `prepare` of the same directory left in `parent`
    (`<prefix><pid>-...`, its process gone); a running one's staging stays."""
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _checksum(path: str) -> dict:
    """`{"bytes": size, "sha256": hex digest}` of the file at `path`."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _record(ids: np.ndarray, arrays: dict[str, np.ndarray]) -> bytes:
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


# -- reading ---------------------------------------------------------------------------------------
class ShardSource:
    """Training and held-out pipelines read from the shards that `data.files` names.

    Args:
        pattern: `data.files`: a directory written by `prepare`, or a glob of its shards.
        task: The task whose `check_arrays` decides the dtypes and shapes its model takes.
        shuffle_buffer: `data.shuffle_buffer`: examples held for shuffling, per input pipeline.
    """

    def __init__(self, pattern: str, task, shuffle_buffer: int):
        self.pattern, self.shuffle_buffer = pattern, shuffle_buffer
        self.description = f"data.files={pattern}"
        self.meta = _read_meta(pattern)
        self.files = {split: _split_files(pattern, self.meta, split) for split in SPLITS}
        # {split: {"x": Feature, "y": Feature}} (or `x.<name>`...): what the records hold.
        self.stored = {
            split: {
                name: Feature(np.dtype(spec["dtype"]).newbyteorder("<").str, tuple(spec["shape"]))
                for name, spec in self.meta["splits"][split]["features"].items()
            }
            for split in SPLITS
        }
        # The task casts and checks a sample; the pipelines then cast every batch the same way.
        sample = self._sample(64)
        checked = task.check_arrays(sample, self.description)
        self.checked = {
            key: Feature(values.dtype.str, values.shape[1:])
            for key, values in leaves(checked.x_train, "x") + leaves(checked.y_train, "y")
        }
        if self.checked.keys() != self.stored["train"].keys():
            raise RunError(
                f"{self.description}: the shards hold {sorted(self.stored['train'])} but the "
                f"task takes {sorted(self.checked)}; prepare them again for this task"
            )
        self.example_inputs, self.example_targets = checked.x_train, checked.y_train

    @property
    def num_train_examples(self) -> int:
        return sum(self.files["train"].values())

    @property
    def num_eval_examples(self) -> int:
        return sum(self.files["eval"].values())

    def _sample(self, count: int) -> Arrays:
        import tensorflow as tf

        parts = []
        for split in SPLITS:
            records = tf.data.TFRecordDataset(sorted(self.files[split]))
            examples = records.map(lambda r, s=split: self._decode(r, s, cast=False))
            examples = examples.rebatch(count)
            parts += [
                tf.nest.map_structure(lambda t: t.numpy(), nest) for nest in next(iter(examples))
            ]
        return Arrays(*parts)

    def _decode(self, record, split: str = "train", cast: bool = True):
        """One record of `split` to `(x, y)` of its examples, in the stored (or the task's)
        types."""
        import tensorflow as tf

        stored_split = self.stored[split]
        spec = {key: tf.io.FixedLenFeature([], tf.string) for key in stored_split}
        features = tf.io.parse_single_example(record, spec)
        decoded = {}
        for key, stored in stored_split.items():
            values = tf.io.decode_raw(features[key], tf.as_dtype(np.dtype(stored.dtype)))
            values = tf.reshape(values, [-1, *stored.shape])
            if cast:
                checked = self.checked[key]
                values = tf.reshape(
                    tf.cast(values, tf.as_dtype(np.dtype(checked.dtype))), [-1, *checked.shape]
                )
            decoded[key] = values

        def nest(prefix):  # `x` itself, or the dict of its named arrays
            if prefix in decoded:
                return decoded[prefix]
            return {key[2:]: value for key, value in decoded.items() if key[0] == prefix}

        return nest("x"), nest("y")

    # -- training -------------------------------------------------------------------------------
    def record_sizes(self, path: str) -> list[int]:
        """Example counts of the records of the training shard `path`, as prepare wrote them."""
        size = self.files["train"][path]
        per_record = self.meta["splits"]["train"].get("examples_per_record", 1)
        return [per_record] * (size // per_record) + (
            [size % per_record] if size % per_record else []
        )

    def plan(self, num_pipelines: int, pipeline_id: int):
        """What input pipeline `pipeline_id` of `num_pipelines` reads each epoch: its files,
        `"files"` when it keeps all their examples or `"examples"` when it keeps every
        `num_pipelines`-th example of each record, and how many examples make its epoch."""
        paths = sorted(self.files["train"])
        if len(paths) % num_pipelines == 0:
            paths = paths[pipeline_id::num_pipelines]
            return paths, "files", sum(self.files["train"][path] for path in paths)
        kept = sum(
            len(range(pipeline_id, size, num_pipelines))
            for path in paths
            for size in self.record_sizes(path)
        )
        return paths, "examples", kept

    def examples(self, seed: int, num_pipelines: int, pipeline_id: int, start: int):
        """Pipeline `pipeline_id`'s endless stream of training examples, as `(x, y)` chunks of
        consecutive examples, from position `start` on (position = examples this pipeline has
        handed out since the first step).

        Epoch `e` reads the files in an order of `(seed, e)`, shuffles their records in a
        buffer of `(seed, e)` and permutes the examples of each record by `(seed, e, record)`.
        Only the file order and the buffer are made per epoch; decoding and permuting are one
        function for the whole stream (making them per epoch traces them anew every epoch).
        """
        import tensorflow as tf

        paths, sharding, epoch_size = self.plan(num_pipelines, pipeline_id)
        if epoch_size == 0:
            raise RunError(
                f"{self.description}: {self.num_train_examples} training examples cannot feed "
                f"{num_pipelines} workers; write more examples or use fewer workers"
            )
        names = tf.constant(paths)
        seed64 = tf.constant(seed, tf.int64)
        per_record = self.meta["splits"]["train"]["examples_per_record"]
        record_buffer = max(1, self.shuffle_buffer // per_record)

        def epoch(index):
            # The buffer's seeds are this function graph's seed and the op's; a fixed graph seed
            # keeps them a function of `(seed, e)` alone, whatever the process's global seed.
            # (Under a global seed of 0, TensorFlow's seed check fails on a tensor op seed.)
            tf.compat.v1.set_random_seed(1)
            order = tf.random.experimental.stateless_shuffle(names, seed=tf.stack([seed64, index]))
            records = tf.data.Dataset.from_tensor_slices(order).interleave(
                tf.data.TFRecordDataset, cycle_length=min(len(paths), 8), block_length=1
            )
            records = records.shuffle(record_buffer, seed=seed64 * 1_000_003 + index)
            return tf.data.Dataset.zip(tf.data.Dataset.from_tensors(index).repeat(), records)

        def permute(index, record):
            x, y = self._decode(record)
            key = tf.strings.to_hash_bucket_fast(record, np.iinfo(np.int64).max)
            order = tf.random.experimental.stateless_shuffle(
                tf.range(_rows(x)), seed=tf.stack([seed64 * 1_000_003 + index, key])
            )
            if sharding == "examples":
                order = order[pipeline_id::num_pipelines]
            return tf.nest.map_structure(lambda part: tf.gather(part, order), (x, y))

        def skip(left, chunk):  # drops the first `left` examples of the stream
            size = tf.cast(_rows(chunk), tf.int64)
            drop = tf.minimum(left, size)
            # A chunk dropped whole becomes a new empty one, not an empty view of its buffer
            # (TensorFlow logs an error line about those).
            kept = tf.nest.map_structure(
                lambda part: tf.cond(
                    drop < size,
                    lambda: part[drop:],
                    lambda: tf.zeros((0, *part.shape[1:]), part.dtype),
                ),
                chunk,
            )
            return left - drop, kept

        first_epoch, position = divmod(start, epoch_size)
        stream = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
        stream = stream.map(permute)
        if position:
            stream = stream.scan(tf.constant(position, tf.int64), skip)
            stream = stream.filter(lambda x, y: _rows(x) > 0)
        return stream

    def train_batches(self, strategy, global_batch_size: int, seed: int, start_step: int):
        """The distributed dataset of global batches, batch `s` for step `s`, from `start_step`
        on: each input pipeline (one per worker) gives its replicas consecutive batches."""
        import tensorflow as tf

        if self.num_train_examples < global_batch_size:
            raise RunError(
                f"train.batch_size={global_batch_size}: larger than the "
                f"{self.num_train_examples} training examples of {self.description}"
            )

        def pipeline(context: tf.distribute.InputContext):
            workers = context.num_input_pipelines
            per_replica = context.get_per_replica_batch_size(global_batch_size)
            start = start_step * (global_batch_size // workers)
            stream = self.examples(seed, workers, context.input_pipeline_id, start)
            # drop_remainder gives the batches a static size (the stream never ends): with an
            # unknown batch dimension the traced train step cannot specialise its shapes.
            batches = stream.rebatch(per_replica, drop_remainder=True)
            return _options(batches)

        return strategy.distribute_datasets_from_function(pipeline)

    # -- evaluation -----------------------------------------------------------------------------
    def eval_dataset(self, global_batch_size: int):
        """The held-out shards once through, in order; the last batch may be short."""
        import tensorflow as tf

        records = tf.data.TFRecordDataset(sorted(self.files["eval"]))
        examples = records.map(lambda record: self._decode(record, "eval"))
        batches = examples.rebatch(global_batch_size)
        count = math.ceil(self.num_eval_examples / global_batch_size)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
        return _options(batches, shard_by_data=True)


def _rows(nest):
    """The number of examples of a tensor or a nest of them (its first leaf's rows)."""
    import tensorflow as tf

    return tf.shape(tf.nest.flatten(nest)[0])[0]


def _options(dataset, shard_by_data: bool = False):
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    # As for the in-memory pipelines: autotuning's optimisation thread takes CPU from the
    # training step on small machines, and a fixed prefetch keeps the step fed.
    options.autotune.enabled = False
    if shard_by_data:  # a dataset of global batches, split by tf.distribute
        policy = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options).prefetch(2)


def _read_meta(pattern: str) -> dict:
    directory = pattern if os.path.isdir(pattern) else os.path.dirname(pattern)
    path = os.path.join(directory, META)
    if not glob.glob(_glob(pattern)):
        raise RunError(
            f"data.files={pattern}: no shards match; write them with `python -m "
            f"{__package__}.prepare data.files=<directory>`"
        )
    try:
        with open(path, encoding="utf-8") as file:
            meta = json.load(file)
        for split in SPLITS:
            prefixes = {key.split(".")[0] for key in meta["splits"][split]["features"]}
            if prefixes != {"x", "y"}:
                raise KeyError(f"features of {split}: {sorted(prefixes)}")
    except FileNotFoundError:
        raise RunError(
            f"data.files={pattern}: no {META} beside the shards; shards written by `python -m "
            f"{__package__}.prepare` have one"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(f"{path}: not a {META} written by prepare ({error})") from None
    if meta.get("format") != FORMAT:
        raise RunError(f"{path}: format {meta.get('format')!r}; this reader reads {FORMAT!r}")
    return meta


def _glob(pattern: str) -> str:
    """The glob of the shards: every `.tfrecord` of a directory (its name taken literally,
    brackets and all), or `pattern` itself."""
    return os.path.join(glob.escape(pattern), "*.tfrecord") if os.path.isdir(pattern) else pattern


def _split_files(pattern: str, meta: dict, split: str) -> dict[str, int]:
    """{path: example count} of the matched shards of `split`."""
    directory = pattern if os.path.isdir(pattern) else os.path.dirname(pattern)
    listed = meta["splits"].get(split, {}).get("files", {})
    known = {name for part in meta["splits"].values() for name in part.get("files", {})}
    matched = sorted(glob.glob(_glob(pattern)))
    strangers = [path for path in matched if os.path.basename(path) not in known]
    if strangers:
        raise RunError(
            f"data.files={pattern}: {strangers[0]} is not listed in "
            f"{os.path.join(directory, META)}; match only the shards prepare wrote"
        )
    found = {
        path: listed[os.path.basename(path)] for path in matched if os.path.basename(path) in listed
    }
    if not found:
        raise RunError(
            f"data.files={pattern}: matches no {split} shards ({split}-*.tfrecord); "
            "a run reads both train and eval shards"
        )
    _verify(pattern, directory, meta, split, found)
    return found


def _verify(pattern: str, directory: str, meta: dict, split: str, found: dict) -> None:
    """Refuses, in one line naming the file, a shard of `split` that `dataset.json` lists and
    the pattern selects but is missing, and one whose size or sha256 differs from the listed
    one (truncated, changed or corrupted). Shards without listed checksums (older prepares)
    are checked for presence only."""
    part = meta["splits"][split]
    wanted = _glob(pattern)
    for name in sorted(part.get("files", {})):
        path = os.path.join(directory, name)
        if fnmatch.fnmatchcase(path, wanted) and path not in found and not os.path.exists(path):
            raise RunError(
                f"data.files={pattern}: {path} is listed in {META} but missing; restore it or "
                "prepare the shards again"
            )
    for path in sorted(found):
        listed = part.get("checksums", {}).get(os.path.basename(path))
        if listed is None:
            continue
        size = os.path.getsize(path)
        if size != listed["bytes"]:
            raise RunError(
                f"data.files={pattern}: {path} holds {size} bytes, {META} lists "
                f"{listed['bytes']} (truncated or changed); restore it or prepare the shards again"
            )
        if _checksum(path)["sha256"] != listed["sha256"]:
            raise RunError(
                f"data.files={pattern}: {path} differs from the file prepare wrote (its sha256 "
                f"is not the one {META} lists: changed or corrupted); restore it or prepare the "
                "shards again"
            )
