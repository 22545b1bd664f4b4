"""The outer loop: restore, then train in chunks between boundaries, then finish.

Between compiled chunks it runs a list of actions (`loop/actions.py`: logs, evaluation,
divergence, signals, the best checkpoint, checkpoints, the user's own from `actions=`).
Cadences (`train.log_every_steps`, `eval.every_steps`, `checkpoint.every_steps`, each action's
`every_steps`) are exact at any `train.steps_per_execution`: a chunk always ends on the next
boundary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time

import keras
import tensorflow as tf

from ..config import Config
from ..errors import AlreadyDone, Diverged, RunError, Stop
from ..storage import StorageError
from ..tasks.base import Task, make_task
from .actions import Boundary, Run, built_in_actions, checkpoint_name, next_boundary, user_actions
from .agreement import agree, settings_of, stop_code
from .best import BestKeeper
from .checkpoints import CheckpointKeeper, has_checkpoints
from .cluster import make_cluster
from .logs import RunLog
from .run_dir import (
    RunDirLock,
    check_same_identity,
    identity_keys,
    new_run_id,
    prepare_run_dir,
    read_run_json,
    run_identity,
    start_segment,
    write_json,
)
from .threads import configure_threads
from .trainer import Trainer

log = logging.getLogger(__name__)


def train_and_evaluate(cfg: Config) -> dict:
    """Trains `cfg` to `train.steps` (resuming from run_dir) and returns the final metrics."""
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    task = make_task(cfg)
    # Before anything is written: bad data, an error in the model (built on a real batch), or
    # in the train step (traced by a call that runs zero steps) stops the run here.
    try:
        # Thread pools, logical devices and a multi-worker cluster are set before TensorFlow's
        # runtime starts. On one device, arrays in memory are read first, without it: they
        # size the model for the thread choice. Shards, and a strategy's own data, come once
        # the strategy is set up (its devices or cluster must be configured first).
        early = not cfg.data.files and cfg.distribute.strategy == "none"
        source = task.source(cfg.data) if early else None
        configure_threads(cfg, task, source)
        cluster = make_cluster(cfg.distribute, cfg.precision.policy)
        agree(cluster, settings_of(cfg), "their settings")
        keras.utils.set_random_seed(cfg.seed)
        source = source or task.source(cfg.data)
        trainer = Trainer(cfg, cluster, task, source)
        trainer.train_steps(training_batches(cfg, cluster, source, 0), tf.constant(0, tf.int32))
    except tf.errors.DataLossError as error:
        raise RunError(f"{damaged_data(error)}: restore it or prepare the data again") from None
    check_metric_keys(cfg, trainer)
    actions = user_actions(cfg.actions)
    for action in actions:
        action.check(Run(cfg, task, trainer, cluster, source))
    if cluster.is_chief:
        prepare_run_dir(cfg.run_dir)
    with RunDirLock(cfg.run_dir, enabled=cluster.is_chief):
        return _train(cfg, cluster, task, source, trainer, actions)


def check_metric_keys(cfg: Config, trainer: Trainer) -> None:
    """Config keys that name an evaluation value must name one this task logs: checked before
    anything is written, not at the first evaluation."""
    metric = cfg.checkpoint.best_metric
    if metric and metric not in trainer.eval_names:
        raise RunError(
            f"checkpoint.best_metric={metric}: not an evaluation value of task="
            f"{trainer.task.name}; choose one of {', '.join(trainer.eval_names)}"
        )


def training_batches(cfg: Config, cluster, source, step: int):
    """The distributed iterator over the training (micro-)batches of `source` (`task.source`),
    from step `step` on."""
    k = cfg.train.accumulate_steps
    batches = source.train_batches(cluster.strategy, cfg.train.batch_size // k, cfg.seed, step * k)
    return iter(batches)


def _train(cfg: Config, cluster, task: Task, source, trainer: Trainer, actions=()) -> dict:
    restored, record, keeper, best = _restore(cfg, cluster, task, trainer)
    step = restored or 0
    held_out, eval_batches = trainer.held_out(source.eval_dataset(cfg.eval.batch_size))
    run_log = RunLog(
        cfg.run_dir, cfg.train.steps, step, trainer.progress_fields, enabled=cluster.is_chief
    )
    parts = dict(run_log=run_log, held_out=held_out, eval_batches=eval_batches)
    parts.update(keeper=keeper, best=best, stop_code=stop_code, source=source)
    actions = built_in_actions(cfg, trainer, cluster, parts, actions)
    run = Run(cfg, task, trainer, cluster, source, last_saved=restored)
    iterator = training_batches(cfg, cluster, source, step)
    try:
        for action in actions:
            action.begin(run, step)
        while step < cfg.train.steps:
            end = next_boundary(step, cfg, actions)
            started = time.perf_counter()
            # At a log step the chunk's call also reads the training metrics (`TrainingLogs`
            # collects them); were this to miss one, collecting would cost one call more.
            logs_due = end % cfg.train.log_every_steps == 0 or end == cfg.train.steps
            num_steps = tf.constant(end - step, tf.int32)
            first_bad = int(trainer.train_steps(iterator, num_steps, read_logs=logs_due))
            if first_bad >= 0:
                raise Diverged(
                    f"training diverged at step {step + first_bad + 1}: the loss is "
                    f"not finite; last good checkpoint: {checkpoint_name(run.last_saved)}"
                )
            seconds = time.perf_counter() - started
            boundary = Boundary(end, end == cfg.train.steps, end - step, seconds)
            step = end
            for action in actions:
                if action.due(boundary):
                    action(run, boundary)
            if boundary.stop is not None:
                raise Stop(boundary.stop, step)
            if boundary.stop_early:
                print(_stopped_early(best, step), file=sys.stderr)
                break
        run.result = {
            "step": step,
            **run.logs,
            **(best.summary() if best is not None else {}),
            "tracing_count": trainer.tracing_count,
            "weights_sha256": trainer.weights_digest(),
            "chief": cluster.is_chief,
        }
    except StorageError as error:  # metrics.jsonl or an event file could not be written
        raise RunError(
            f"{error}; the newest checkpoint is {checkpoint_name(run.last_saved)}: "
            "fix that and run the same command to resume"
        ) from None
    except tf.errors.DataLossError as error:  # a file changed after the start's checks
        raise RunError(
            f"{damaged_data(error)}; the newest checkpoint is {checkpoint_name(run.last_saved)}: "
            "restore the file (or prepare the data again), then run the same command to resume"
        ) from None
    except tf.errors.OpError as error:
        said = peer_lost(error) if cluster.num_workers > 1 else ""
        if said:
            raise RunError(
                f"a worker of the cluster stopped answering ({said}); the newest "
                f"checkpoint is {checkpoint_name(run.last_saved)}: start every worker again with "
                "the same command to resume"
            ) from None
        raise
    finally:
        for action in reversed(actions):
            action.end(run)
        if cluster.is_chief and run.last_saved is not None:  # how far this segment got, saved
            record["segments"][-1]["end_step"] = run.last_saved
            with contextlib.suppress(RunError):  # never hide the error that ended the run
                write_json(os.path.join(cfg.run_dir, "run.json"), record)
    if cluster.is_chief:
        write_json(os.path.join(cfg.run_dir, "final_metrics.json"), run.result)
    return run.result


def damaged_data(error: Exception) -> str:
    """One line for a record TensorFlow could not read (a data file damaged mid-run)."""
    noise = ("[[", "File ", "Detected at node", "Graph execution error")  # where, not what
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    said = next((line for line in reversed(lines) if line and not line.startswith(noise)), "")
    said = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[\[.*$|\s*\[Op:.*$", "", said) or "unreadable"
    return f"a data file is damaged ({said[:200]})"


def peer_lost(error: Exception) -> str:
    """What TensorFlow said when a peer died or hung (it then aborts every collective), or ""."""
    text = str(getattr(error, "message", error))
    aborted = "Collective ops is aborted" in text
    if not (aborted or isinstance(error, tf.errors.UnavailableError)):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in lines if "aborted by" in line or "is down" in line), lines[0])
    return said.removeprefix("Collective ops is aborted by: ")[:200]


def _restore(cfg: Config, cluster, task: Task, trainer: Trainer):
    """Restores the newest readable checkpoint of run_dir (every worker agreeing on it) and
    records the new segment in run.json: (the step restored or None, run.json record,
    checkpoint keeper, best checkpoint keeper)."""
    run_dir = cfg.run_dir
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    if os.path.lexists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        what = "a link to nothing" if os.path.islink(checkpoint_dir) else "a file, not a directory"
        raise RunError(f"{checkpoint_dir}: is {what}; move it away (checkpoints go there)")
    record = read_run_json(run_dir) if has_checkpoints(checkpoint_dir) else None
    check_same_identity(record, cfg, identity_keys(task))
    # Every checkpoint carries the run's id and identity settings; a restore compares them.
    # Without run.json the checkpoint's own id is taken up; a new run gets a new one.
    identity = run_identity(cfg, identity_keys(task), (record or {}).get("run_id"))
    keeper = CheckpointKeeper(
        trainer.checkpoint, checkpoint_dir, cfg.checkpoint.max_to_keep, cluster.is_chief, identity
    )
    restored = keeper.restore_latest(cfg.checkpoint.allow_fresh_start)
    if not identity["run_id"]:
        identity["run_id"] = keeper.restored_run_id or new_run_id()
        keeper.stamp()
    agree(cluster, [("the checkpoint restored from run_dir", restored)], "where to resume")
    step = restored or 0
    if step >= cfg.train.steps:
        message = (
            f"run_dir={run_dir} is already at step {step} (ckpt-{step}); "
            f"train.steps={cfg.train.steps} trains nothing: raise train.steps to continue"
        )
        raise AlreadyDone(message) if step == cfg.train.steps else RunError(message)
    best = None
    if cfg.checkpoint.best_metric:
        chief = cluster.is_chief
        best = BestKeeper(trainer.checkpoint, checkpoint_dir, cfg.checkpoint, step, chief)
        if best.exhausted:
            raise AlreadyDone(f"run_dir={run_dir} {_stopped_early(best, step)}")
    trainer.apply_configured_learning_rates()
    if restored is not None:
        print(f"resumed from {checkpoint_dir}/ckpt-{step}; next step {step + 1}", file=sys.stderr)
    if cluster.is_chief:
        record = start_segment(record, cfg, cluster, step, identity["run_id"])
        changed = record["segments"][-1]["changed"]
        if changed:
            listed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
            print(f"changed settings (recorded in run.json): {listed}", file=sys.stderr)
        write_json(os.path.join(run_dir, "run.json"), record)
    return restored, record, keeper, best


def _stopped_early(best: BestKeeper, step: int) -> str:
    best_step, value = best.best
    return (
        f"stopped early at step {step}: {best.metric} did not improve for {best.patience} "
        f"evaluations; best: step {best_step} ({best.metric}={value:.6g}) in "
        f"{best.directory} (checkpoint.which=best for evaluate and export)"
    )
