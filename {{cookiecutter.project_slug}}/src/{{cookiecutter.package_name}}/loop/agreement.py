"""What the workers of a cluster must agree on: their settings, and when to stop."""

from __future__ import annotations

import functools
import zlib

import tensorflow as tf

from ..config import flat
from ..errors import RunError
from .cluster import Cluster

# Settings each worker may hold for itself: its own paths (mounts differ between machines), its
# port, whether it profiles, its thread pools. Every other setting must be the same on every
# worker.
PER_WORKER_KEYS = (
    "run_dir",
    "data.path",
    "data.files",
    "distribute.port_base",
    "profile.",
    "threads.",
)
SHOWN_PER_WORKER_KEYS = "run_dir, data.path, data.files, distribute.port_base, profile.*, threads.*"


def settings_of(cfg) -> list[tuple[str, object]]:
    """`[(dotted key, value)]` of every setting of `cfg` the workers must agree on."""
    return [
        (key, value)
        for key, value in flat(cfg).items()
        if not any(key == p or key.startswith(p) for p in PER_WORKER_KEYS)
    ]


def agree(cluster: Cluster, items: list[tuple[str, object]], what: str) -> None:
    """Every worker of `cluster` holds the same `items` (`[(name, value)]`), or every worker
    raises RunError naming the first that differs, before anything trains.

    Workers that differ in batch size, learning rate or steps would otherwise train on with
    different weights or wait for each other forever. One all-gather of a checksum per item.
    """
    if cluster.num_workers <= 1:
        return
    sums = [zlib.crc32(f"{key}={value!r}".encode()) for key, value in items] + [len(items)]
    gathered = _all_gather(cluster.strategy)(tf.constant(sums, tf.int64))
    rows = tf.reshape(gathered, [-1, len(sums)]).numpy()
    differs = [index for index in range(len(sums)) if len(set(rows[:, index])) > 1]
    if not differs:
        return
    if differs[0] == len(items):
        raise RunError(f"the workers disagree on {what}: they run different versions of the code")
    key, value = items[differs[0]]
    raise RunError(
        f"the workers disagree on {what}: {key} (this worker: {value!r}); start every worker "
        f"with the same settings (only {SHOWN_PER_WORKER_KEYS} may differ)"
    )


def stop_code(cluster: Cluster, code: int | None) -> int | None:
    """The exit code of a stop signal received by any worker (the highest), else None.

    Every worker calls it at the same step boundary, so that all stop (and save) at the same
    step: a worker that stopped alone would leave the others waiting in their next all-reduce.
    One all-gather of one number per boundary, on several workers only.
    """
    if cluster.num_workers <= 1:
        return code
    highest = int(tf.reduce_max(_all_gather(cluster.strategy)(tf.constant([code or 0], tf.int64))))
    return highest or None


@functools.cache
def _all_gather(strategy: tf.distribute.Strategy):
    """Every worker's int64 vector, concatenated: one compiled function per strategy (run
    eagerly, each call warned of its overhead and traced anew)."""

    @tf.function(reduce_retracing=True)
    def gather(local):
        return strategy.gather(strategy.run(tf.identity, args=(local,)), axis=0)

    return gather
