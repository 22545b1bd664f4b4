"""Writing a task's splits into shards: all or nothing, the same bytes in any process."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile

import numpy as np

from ..data import Arrays, leaves, num_rows
from ..errors import RunError
from ..storage import storage_cause
from .format import (
    FORMAT,
    META,
    SHARD_BYTES,
    SPLITS,
    checksum,
    encode_record,
    examples_per_record,
    shard_sizes,
)


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
                        writer.write(
                            encode_record(ids, {key: values[ids] for key, values in named})
                        )
                files[name] = size
                checksums[name] = checksum(os.path.join(staging, name))
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
