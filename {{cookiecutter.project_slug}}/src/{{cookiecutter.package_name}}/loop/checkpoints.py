"""Checkpoints that resume exactly and never leave a run without a good one.

* `run_dir/checkpoints/ckpt-<step>`, written by `tf.train.CheckpointManager`, which moves its
  "latest" pointer only after the data files are complete (an interrupted save never becomes
  latest). The last `checkpoint.max_to_keep` stay on disk as fallbacks.
* Before a restore, every tensor of the candidate is read; a damaged checkpoint (truncated data,
  missing shard, garbage index) is named in a warning and the next older one is tried.
* Under a multi-worker strategy every worker takes part in a save (it is a collective op), but
  only the chief writes into run_dir; the others write into a temporary directory and delete it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from ..errors import RunError

log = logging.getLogger(__name__)


class CheckpointKeeper:
    """Saves and restores one `tf.train.Checkpoint` under `directory`."""

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        max_to_keep: int,
        is_chief: bool = True,
    ):
        self.checkpoint = checkpoint
        self.directory = directory
        self.max_to_keep = max_to_keep
        self.is_chief = is_chief
        self._manager = None

    def candidates(self) -> list[str]:
        """Checkpoint prefixes found in the directory, newest first."""
        state = tf.train.get_checkpoint_state(self.directory)
        if state is None:
            return []
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        paths = [p if os.path.isabs(p) else os.path.join(self.directory, p) for p in paths]
        return sorted(set(paths), key=step_of, reverse=True)

    def restore_latest(self, allow_fresh_start: bool = False) -> int | None:
        """Restores the newest readable checkpoint and returns its step (None: nothing saved).

        Raises `RunError` when checkpoints exist but none can be read, unless
        `allow_fresh_start` is set.
        """
        candidates = self.candidates()
        for path in candidates:
            problem = unreadable_reason(path)
            if problem:
                log.warning("checkpoint %s is damaged (%s); trying an older one", path, problem)
                continue
            status = self.checkpoint.restore(path)
            try:
                status.assert_existing_objects_matched()
            except AssertionError as error:
                raise RunError(
                    f"{path}: holds a different model or optimizer than this config "
                    f"({str(error).splitlines()[0][:160]}); use a new run_dir"
                ) from None
            return step_of(path)
        if candidates and not allow_fresh_start:
            raise RunError(
                f"no readable checkpoint in {self.directory} (tried "
                f"{', '.join(os.path.basename(p) for p in candidates)}); pass "
                "checkpoint.allow_fresh_start=true to start over"
            )
        return None

    def save(self, step: int) -> str | None:
        """Writes `ckpt-<step>` (chief) or a throwaway copy (other workers); returns the path."""
        if self.is_chief:
            if self._manager is None:
                self._manager = tf.train.CheckpointManager(
                    self.checkpoint, self.directory, self.max_to_keep, checkpoint_name="ckpt"
                )
            return self._manager.save(checkpoint_number=step)
        directory = tempfile.mkdtemp(prefix="ckpt-worker-")
        try:
            tf.train.CheckpointManager(self.checkpoint, directory, 1).save(checkpoint_number=step)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return None


def step_of(path: str) -> int:
    """`.../ckpt-1200` -> 1200."""
    return int(path.rsplit("-", 1)[-1])


def unreadable_reason(path: str) -> str | None:
    """Reads every tensor of a checkpoint; returns what is wrong, or None when it is whole."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if (
                isinstance(value, np.ndarray)
                and value.dtype.kind == "f"
                and not np.isfinite(value).all()
            ):
                return f"non-finite values in {name}"
    except Exception as error:  # the reader raises OpError, IndexError, ValueError...
        return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return None


def has_checkpoints(directory: str) -> bool:
    return tf.train.get_checkpoint_state(directory) is not None
