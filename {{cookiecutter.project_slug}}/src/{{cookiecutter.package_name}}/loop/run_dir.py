"""A run directory: made writable, held by one training process, and its record (`run.json`).

* One writer: training takes an exclusive `flock` on `run_dir/.lock` before it writes anything
  and keeps it to the end; a second process stops in one line naming the holder's pid and host.
  The kernel drops the lock when its holder dies, so a killed run never leaves a stale lock.
  Under a multi-worker strategy only the chief writes, so only the chief takes it.
* `run.json` holds the config of the newest segment (what `evaluate` and `export` rebuild) and
  every segment of the run: start and end step, command line, host, time, versions, and the keys
  changed since the segment before (a resume may change the batch size or the learning rate;
  it is recorded, not refused). Keys that make checkpoints unusable are refused instead.
* `run.json` also holds the run's id, made when the run starts. Every checkpoint carries it
  with the identity settings (`run_identity`), and a restore compares them
  (`loop/checkpoints.py`): a checkpoint copied in from another run is refused, not resumed.
* Every file is written atomically (a temporary file, then a rename): a reader never sees half
  a file, and a full disk leaves the previous file and no temporary one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import tempfile
import time
import uuid

from .. import __version__
from ..config import Config, task_name, to_dict
from ..errors import RunError
from ..storage import storage_cause, too_long

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per run directory is then up to you
    fcntl = None

# Keys whose change makes a run_dir's checkpoints unusable (the model or its inputs differ),
# besides the task's own `Task.identity_keys` (as `task.<key>`).
IDENTITY_KEYS = (
    "task._target_",
    "data.path",
    "data.files",
    "optimizer.name",
    "optimizer.head_learning_rate",
    "optimizer.schedule",
    "precision.policy",
    "seed",
)
# Settings whose change alters what a checkpoint holds, and what it alters (a refusal says so,
# rather than naming a tensor the restore could not match).
CONTENT_KEYS = {
    "optimizer.ema_decay": "the weight averages, kept when it is above 0",
    "optimizer.schedule": "a learning rate variable, or a schedule of the step",
    "optimizer.head_learning_rate": "one optimizer, or one for the body and one for the head",
    "optimizer.name": "the optimizer's slots",
}
# Keys that may differ between segments without being a change of the run.
NOT_RECORDED = ("run_dir", "distribute.", "checkpoint.allow_fresh_start")


# The longest path a run writes below run_dir, beyond the host name: an event file
# (`tensorboard/train/events.out.tfevents.<time>.<host>.<pid>.<n>`), a checkpoint being written
# (`checkpoints/best/ckpt-<step>_temp/part-00000-of-00001.data-00000-of-00001`), an export
# (`.export-staging-<random>/saved_model/variables/variables.data-00000-of-00001`).
LONGEST_BELOW = 128


def prepare_run_dir(run_dir: str) -> None:
    """Creates run_dir and proves it writable, or raises RunError naming the real cause: a
    file or a link to nothing in its place, a path longer than the file system allows (with
    what the run writes below it), read-only, no space."""
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        what = "a link to nothing" if os.path.islink(run_dir) else "a file, not a directory"
        raise RunError(f"run_dir={run_dir}: is {what}; choose another run_dir")
    longest = LONGEST_BELOW + len(socket.gethostname())
    limit = too_long(run_dir, below=longest)
    if limit:
        shown = run_dir if len(run_dir) <= 80 else f"{run_dir[:40]}...{run_dir[-20:]}"
        raise RunError(
            f"run_dir={shown}: too long for its file system ({limit}); choose a shorter run_dir"
        )
    try:
        os.makedirs(run_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        cause = storage_cause(error, os.path.join(run_dir, "x"))
        raise RunError(f"run_dir={run_dir}: not writable ({cause})") from None


def write_json(path: str, payload: dict) -> None:
    """Writes atomically: a reader never sees half a file; a failed write leaves no temporary."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2)
            file.write("\n")
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise RunError(f"{path}: could not be written ({storage_cause(error, path)})") from None


def read_run_json(run_dir: str) -> dict | None:
    """The run's record, or None when there is none; RunError (one line) when it is damaged."""
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
        if not isinstance(record.get("config"), dict):
            raise ValueError("no config in it")
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError) as error:
        raise RunError(
            f"{path}: damaged ({str(error).splitlines()[0][:80]}); it records the run's config: "
            "restore it from a copy, or train into a new run_dir"
        ) from None
    return record


class RunDirLock:
    """Exclusive hold of a run directory by one process, for a `with` block."""

    def __init__(self, run_dir: str, enabled: bool = True):
        self.path = os.path.join(run_dir, ".lock")
        self.enabled = enabled and fcntl is not None
        self._file = None

    def __enter__(self):
        if not self.enabled:
            return self
        self._file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held to __exit__)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunError(
                f"run_dir={os.path.dirname(self.path)}: in use by {holder}; wait for it to end, "
                "or train into another run_dir"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self._file.flush()
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def leaves(config, prefix: str = "") -> dict:
    """{"task": {"hidden_units": 64}} -> {"task.hidden_units": 64}."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat = {}
    for key, value in config.items():
        flat.update(leaves(value, f"{prefix}.{key}" if prefix else key))
    return flat


def identity_keys(task) -> tuple[str, ...]:
    """The settings a run's checkpoints depend on: IDENTITY_KEYS and the task's own."""
    return IDENTITY_KEYS + tuple(f"task.{key}" for key in task.identity_keys)


def identity_settings(config: dict, keys: tuple[str, ...]) -> dict:
    """`{key: value}` of `keys` and of the settings that change what a checkpoint holds."""
    flat = leaves(config)
    return {key: flat.get(key) for key in (*keys, *CONTENT_KEYS)}


def run_identity(cfg: Config, keys: tuple[str, ...], run_id: str | None) -> dict:
    """What every checkpoint of a run carries: its run id (made when the run starts, kept in
    run.json) and its identity settings."""
    return {"run_id": run_id, "settings": identity_settings(to_dict(cfg), keys)}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _same(key: str, saved, current) -> bool:
    if key == "optimizer.ema_decay":  # 0.99 -> 0.999 is a change of rate; 0 -> 0.99 of contents
        return bool(saved) == bool(current)
    return saved == current


def identity_difference(saved: dict, current: dict) -> str | None:
    """`<key> was <old>, now <new>` for the first identity setting that differs, saying when it
    changes what a checkpoint holds; None when they agree."""
    for key in sorted(current, key=lambda key: key != "task._target_"):
        old, new = saved.get(key), current[key]
        if _same(key, old, new):
            continue
        if key == "task._target_":  # in config terms: task=<name>, never a class path
            return f"task was {task_name(str(old))}, now {task_name(str(new))}"
        said = f"{key} was {old}, now {new}"
        if key in CONTENT_KEYS:
            said += f" (it changes what a checkpoint holds: {CONTENT_KEYS[key]})"
        return said
    return None


def check_same_identity(record: dict | None, cfg: Config, keys: tuple[str, ...]) -> None:
    """Refuses a run whose record (`run.json`) differs from `cfg` in one of `keys`, or in a
    setting that changes what a checkpoint holds."""
    if record is None:
        return
    saved, current = leaves(record["config"]), leaves(to_dict(cfg))
    old_target, new_target = saved.get("task._target_"), current["task._target_"]
    if old_target != new_target:  # in config terms: task=<name>, never a class path
        old_task, new_task = task_name(str(old_target)), task_name(new_target)
        raise RunError(
            f"run_dir={cfg.run_dir} holds checkpoints of task={old_task}, not task={new_task}; "
            f"use another run_dir (e.g. run_dir=runs/{new_task}) or task={old_task}"
        )
    difference = identity_difference(
        identity_settings(record["config"], keys), identity_settings(to_dict(cfg), keys)
    )
    if difference:
        raise RunError(
            f"run_dir={cfg.run_dir} holds checkpoints of a different config: {difference}; "
            "use a new run_dir or the old value"
        )


def changed_keys(record: dict | None, cfg: Config) -> dict:
    """{key: [before, now]} for every setting that differs from the record's config."""
    if record is None:
        return {}
    saved, current = leaves(record["config"]), leaves(to_dict(cfg))
    return {
        key: [saved.get(key), value]
        for key, value in sorted(current.items())
        if saved.get(key) != value and not key.startswith(NOT_RECORDED)
    }


def start_segment(
    record: dict | None, cfg: Config, cluster, start_step: int, run_id: str | None = None
) -> dict:
    """The run's record with a new segment starting at `start_step` (earlier ones kept);
    `run_id`: the run's id, which its checkpoints carry."""
    import keras
    import tensorflow as tf

    versions = {
        "package": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }
    segments = list(record.get("segments", [])) if record else []
    segments.append(
        {
            "start_step": start_step,
            "end_step": None,
            "command": sys.argv,
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions,
            "changed": changed_keys(record, cfg) if start_step else {},
        }
    )
    return {
        "run_id": run_id or (record or {}).get("run_id") or new_run_id(),
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "strategy": cluster.name,
        "num_replicas": cluster.num_replicas,
        "num_workers": cluster.num_workers,
        "precision": cfg.precision.policy,
        "global_batch_size": cfg.train.batch_size,
        "accumulate_steps": cfg.train.accumulate_steps,
        "per_replica_batch_size": (
            cfg.train.batch_size // cfg.train.accumulate_steps // cluster.num_replicas
        ),
        "versions": versions,
        "segments": segments,
    }
