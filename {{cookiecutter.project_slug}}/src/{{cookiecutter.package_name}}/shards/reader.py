"""Reading the shards: a task's training stream and held-out pass, streaming, per input pipeline."""

from __future__ import annotations

import math

import numpy as np

from ..data import Arrays, leaves
from ..errors import RunError
from .files import read_meta, split_files
from .format import SPLITS, Feature


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
        self.meta = read_meta(pattern)
        self.files = {split: split_files(pattern, self.meta, split) for split in SPLITS}
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
