"""Checkpoints that resume exactly and never leave a run without a good one.

* `run_dir/checkpoints/ckpt-<step>`, written by a traced `tf.train.Checkpoint.write`: the object
  graph is serialized once, at tracing, so a save (files, pointer, deletion of the oldest)
  costs a fraction of what `tf.train.CheckpointManager.save` costs. The "latest" pointer (the
  `checkpoint` file, which `CheckpointManager` and `tf.train.latest_checkpoint` read) moves only
  after the data files are complete, by an atomic rename: an interrupted save never becomes
  latest. The last `checkpoint.max_to_keep` stay on disk as fallbacks.
* Resume finds checkpoints from the files themselves (`ckpt-<step>.index`), not from the pointer:
  a lost, empty or garbage pointer file, a `run_dir` spelled another way (relative, absolute,
  from another working directory) or a run directory moved or copied elsewhere loses nothing.
  The pointer names checkpoints relative to its own directory, as `CheckpointManager` does.
* Before a restore, every tensor of the candidate is read; a damaged checkpoint (truncated data,
  missing shard, garbage index) is named in a warning and the next older one is tried.
* A checkpoint proves whose it is and where it stands: it carries the run's identity (its run
  id and identity settings, `run_dir.run_identity`) as a string variable, and its own `step`.
  Before a restore both are compared with the run (run.json, the config) and the file name;
  a checkpoint of another run (copied in, even of the same shapes), of other settings, or
  renamed is refused in one line naming the difference, never resumed.
* A save that fails (a full disk) removes what it wrote, leaves the pointer on the last complete
  checkpoint and stops the run in one line.
* Names are names: TensorFlow reads a checkpoint prefix as a glob pattern (a run_dir such as
  `runs/exp[1]` matched nothing, and its intact checkpoints looked damaged), so a directory
  holding pattern characters is read through a link with a plain name (`literal_prefix`).
* Why not `tf.train.CheckpointManager`: besides its slower saves, under a directory named
  `runs/exp[1]` it saves, but (TensorFlow 2.21, measured) a restore of its own latest
  checkpoint fails with NotFoundError, and pruning leaves the files of every checkpoint it
  drops on disk (its deletion is a glob that matches nothing). Its pointer is also the only
  way it finds checkpoints, which a lost pointer turns into a fresh start. The pointer written
  here stays one `CheckpointManager` and `tf.train.latest_checkpoint` can read.
* Under a multi-worker strategy every worker takes part in a save (it is a collective op), but
  only the chief writes into run_dir; the others write into a temporary directory and delete it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

from ..errors import RunError
from ..storage import SPACE_ERRORS, error_number, storage_cause
from .run_dir import identity_difference

log = logging.getLogger(__name__)


PRUNED = "pruned"  # a candidate deleted while it was being read
IDENTITY = "run_identity"  # the checkpoint's attribute holding the run's identity (JSON)
IDENTITY_KEY = f"{IDENTITY}/.ATTRIBUTES/VARIABLE_VALUE"
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # the Trainer's `step`, set before each save


class CheckpointKeeper:
    """Saves and restores one `tf.train.Checkpoint` under `directory`.

    `identity`: the run's (`run_dir.run_identity`), written into every checkpoint and compared
    with each before a restore; None leaves the checkpoint's as another keeper stamped it.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        max_to_keep: int,
        is_chief: bool = True,
        identity: dict | None = None,
    ):
        self.checkpoint = checkpoint
        self.directory = directory
        self.max_to_keep = max_to_keep
        self.is_chief = is_chief
        _ = checkpoint.save_counter  # creates it now, so the traced object graph holds it
        # The identity rides in the checkpoint itself, so it must be attached before tracing.
        self.identity = identity
        self.restored_run_id = None  # the run id of the checkpoint restored, once restored
        if not hasattr(checkpoint, IDENTITY):
            setattr(checkpoint, IDENTITY, tf.Variable("", dtype=tf.string, trainable=False))
        self.stamp()
        self._write = tf.function(checkpoint.write)
        self._kept = None  # (name, time) of the listed checkpoints, oldest first

    def stamp(self) -> None:
        """Writes `identity` into the checkpoint's identity variable (saved with every save)."""
        if self.identity is not None:
            text = json.dumps(self.identity, sort_keys=True)
            getattr(self.checkpoint, IDENTITY).assign(text)

    def candidates(self) -> list[str]:
        """Checkpoint prefixes found in the directory, newest first."""
        return checkpoint_prefixes(self.directory)

    def restore_latest(self, allow_fresh_start: bool = False) -> int | None:
        """Restores the newest readable checkpoint and returns its step (None: nothing saved).

        Raises `RunError` when checkpoints exist but none can be read, unless
        `allow_fresh_start` is set.
        """
        outcome, candidates = PRUNED, []
        for _ in range(5):  # a training process pruning this directory may delete a candidate
            candidates = self.candidates()
            outcome = self._restore_first_readable(candidates)
            if outcome is not PRUNED:
                break
        if isinstance(outcome, int):
            return outcome
        if candidates and not allow_fresh_start:
            raise RunError(
                f"no readable checkpoint in {self.directory} (tried "
                f"{', '.join(os.path.basename(p) for p in candidates)}); pass "
                "checkpoint.allow_fresh_start=true to start over"
            )
        return None

    def _restore_first_readable(self, candidates: list[str]):
        """The step of the first of `candidates` (newest first) that restores; None if none
        does; PRUNED if one vanished meanwhile (`evaluate` beside a training that prunes)."""
        for path in candidates:
            with literal_prefix(path) as readable:
                problem = unreadable_reason(readable)
                if problem and not os.path.exists(f"{path}.index"):
                    return PRUNED
                if problem:
                    log.warning("checkpoint %s is damaged (%s); trying an older one", path, problem)
                    continue
                self._check_belongs(readable, path)
                try:
                    status = self.checkpoint.restore(readable)
                    status.assert_consumed()  # every saved value used: no partial restore
                except tf.errors.NotFoundError:
                    if not os.path.exists(f"{path}.index"):
                        return PRUNED
                    raise
                except (AssertionError, ValueError) as error:  # other objects, or other shapes
                    differ = objects_that_differ(readable, self.checkpoint)
                    said = differ or str(error).splitlines()[0][:160]
                    raise RunError(
                        f"{path}: holds a different model or optimizer than this config "
                        f"({said}); use a new run_dir"
                    ) from None
                self.stamp()  # the run's own identity again, over the one just restored
            return step_of(path)
        return None

    def _check_belongs(self, readable: str, path: str) -> None:
        """Refuses (RunError, one line) a checkpoint whose step is not its name's, or that is
        not this run's: another run id, other identity settings, or no identity at all."""
        reader = tf.train.load_checkpoint(readable)
        names = reader.get_variable_to_shape_map()
        if STEP_KEY in names and int(reader.get_tensor(STEP_KEY)) != step_of(path):
            held = int(reader.get_tensor(STEP_KEY))
            raise RunError(
                f"{path}: holds step {held}, not {step_of(path)}: a checkpoint is named by its "
                f"step, so it was renamed or copied over; rename it ckpt-{held} or move it away"
            )
        if self.identity is None:
            return
        if IDENTITY_KEY not in names:
            raise RunError(
                f"{path}: carries no run identity (written by another program or an older "
                "version), so it cannot be told from another run's; train into a new run_dir"
            )
        saved = json.loads(reader.get_tensor(IDENTITY_KEY))
        difference = identity_difference(saved.get("settings", {}), self.identity["settings"])
        if difference:
            raise RunError(
                f"{path}: written with other settings: {difference}; it is not this run's "
                "checkpoint: use the old value, or move it away"
            )
        mine = self.identity.get("run_id")
        if mine and saved.get("run_id") != mine:
            raise RunError(
                f"{path}: belongs to run {saved.get('run_id')}, not to this run_dir's run {mine} "
                "(run.json): copied in from another run, it is never resumed; move it away, or "
                "train into a new run_dir"
            )
        self.restored_run_id = saved.get("run_id")

    def save(self, step: int) -> str | None:
        """Writes `ckpt-<step>` (chief) or a throwaway copy (other workers); returns the path."""
        if not self.is_chief:
            directory = tempfile.mkdtemp(prefix="ckpt-worker-")
            try:
                self._write(tf.constant(os.path.join(directory, f"ckpt-{step}")))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            return None
        path = os.path.join(self.directory, f"ckpt-{step}")
        try:
            if self._kept is None:  # first save: the checkpoints of earlier processes, oldest
                os.makedirs(self.directory, exist_ok=True)
                paths = checkpoint_prefixes(self.directory)[::-1]
                self._kept = [(os.path.basename(p), os.path.getmtime(f"{p}.index")) for p in paths]
            self._write(tf.constant(path))
        except (tf.errors.OpError, OSError) as error:
            self._remove(path)
            shutil.rmtree(f"{path}_temp", ignore_errors=True)
            raise self._save_failed(path, error) from None
        # Like CheckpointManager: record the new one first, then delete the oldest, then record
        # again, so a kill at any point leaves a pointer to complete files.
        name = os.path.basename(path)
        kept = [entry for entry in self._kept if entry[0] != name] + [(name, time.time())]
        try:
            self._record(kept)
        except OSError as error:  # the pointer stays on the one before, which stays latest
            self._remove(path)
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.directory, "checkpoint.tmp"))
            raise self._save_failed(path, error) from None
        for old, _ in kept[: -self.max_to_keep]:
            self._remove(os.path.join(self.directory, old))
        self._kept = kept[-self.max_to_keep :]
        if len(kept) > self.max_to_keep:
            self._record(self._kept)
        return path

    def _save_failed(self, path: str, error: BaseException) -> RunError:
        """One line: the checkpoint, the real cause, and the one a resume would start from."""
        cause = storage_cause(error, path)
        if self._kept is not None:
            last = self._kept[-1][0] if self._kept else "none"
        else:
            last = next((os.path.basename(p) for p in self.candidates()), "none")
        remedy = "free space" if error_number(error) in SPACE_ERRORS else "fix that"
        return RunError(
            f"could not save {path} ({cause}); the latest checkpoint is still {last}: "
            f"{remedy} and run the same command"
        )

    @staticmethod
    def _remove(prefix: str) -> None:
        for file in glob.glob(glob.escape(prefix) + ".*"):
            os.remove(file)

    def _record(self, kept: list[tuple[str, float]]) -> None:
        """Points `checkpoint` at the last of `kept` ((name, time) pairs), listing them all as
        fallbacks; atomic. Timestamps let `tf.train.CheckpointManager` read the list too.

        Names are stored bare, relative to the checkpoint directory (readers join them to it):
        `generate_checkpoint_state_proto` with the directory itself made them relative to the
        working directory instead (`../../../ckpt-N`), which broke resume from anywhere else.
        """
        names, times = zip(*kept)
        state = tf.compat.v1.train.generate_checkpoint_state_proto(
            ".",  # bare names stay bare: relative to the checkpoint directory
            names[-1],
            all_model_checkpoint_paths=list(names),
            all_model_checkpoint_timestamps=list(times),
        )
        pointer = os.path.join(self.directory, "checkpoint")
        with open(f"{pointer}.tmp", "w", encoding="utf-8") as file:
            file.write(text_format.MessageToString(state))
        os.replace(f"{pointer}.tmp", pointer)


def step_of(path: str) -> int:
    """`.../ckpt-1200` -> 1200."""
    return int(path.rsplit("-", 1)[-1])


def checkpoint_prefixes(directory: str) -> list[str]:
    """`<directory>/ckpt-<step>` of every checkpoint whose index file exists, newest first."""
    prefixes = []
    for index in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")):
        prefix = index[: -len(".index")]
        if prefix.rsplit("-", 1)[-1].isdigit():
            prefixes.append(prefix)
    return sorted(prefixes, key=step_of, reverse=True)


PATTERN_CHARACTERS = frozenset("*?[]{}\\")


@contextlib.contextmanager
def literal_prefix(path: str):
    """Yields a prefix TensorFlow reads as the checkpoint `path` itself: `path`, or, when its
    directory's name holds glob characters (`runs/exp[1]`), the same files through a symbolic
    link with a plain name in a temporary directory (removed afterwards; the files stay)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not PATTERN_CHARACTERS & set(directory):
        yield path
        return
    holder = tempfile.mkdtemp(prefix="ckpt-read-")
    try:
        link = os.path.join(holder, "checkpoints")
        os.symlink(directory, link, target_is_directory=True)
        yield os.path.join(link, os.path.basename(path))
    finally:
        shutil.rmtree(holder, ignore_errors=True)  # unlinks the link, never follows it


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


def objects_that_differ(path: str, checkpoint: tf.train.Checkpoint) -> str | None:
    """Which models and optimizers (`model`, `optimizer_<name>`...) the checkpoint at `path` holds
    that `checkpoint` does not, and the other way round; None when both hold the same ones."""
    learned = ("model", "optimizer")  # models and optimizers: what the config decides
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    wanted = set(tf.train.TrackableView(checkpoint).children(checkpoint))
    saved, wanted = (
        {name for name in names if name.startswith(learned)} for names in (saved, wanted)
    )
    extra, missing = sorted(saved - wanted), sorted(wanted - saved)
    said = []
    if extra:
        said.append(f"it holds {', '.join(extra)}, which this config does not make")
    if missing:
        said.append(f"it lacks {', '.join(missing)}, which this config makes")
    return "; ".join(said) or None


def has_checkpoints(directory: str) -> bool:
    return bool(checkpoint_prefixes(directory))
