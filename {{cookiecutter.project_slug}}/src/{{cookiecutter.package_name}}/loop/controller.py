"""The outer loop: restore, then train in chunks between cadence boundaries, then finish.

It owns what happens between compiled calls: evaluation, logs, checkpoints, run.json, signals.
Cadences (`train.log_every_steps`, `eval.every_steps`, `checkpoint.every_steps`) are exact at any
`train.steps_per_execution`: a chunk always ends on the next boundary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time

import keras
import tensorflow as tf

from ..config import Config
from ..errors import STOP_SIGNALS, AlreadyDone, Diverged, RunError, Stop
from ..tasks.base import Task, make_task
from .best import BestKeeper
from .checkpoints import CheckpointKeeper, has_checkpoints
from .cluster import agree, make_cluster, settings_of, stop_code
from .logs import RunLog
from .run_dir import (
    IDENTITY_KEYS,
    RunDirLock,
    check_same_identity,
    prepare_run_dir,
    read_run_json,
    start_segment,
    write_json,
)
from .trainer import Trainer

log = logging.getLogger(__name__)


def identity_keys(task: Task) -> tuple[str, ...]:
    return IDENTITY_KEYS + tuple(f"task.{key}" for key in task.identity_keys)


class _SignalFlag:
    """Turns every stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) into a flag the loop checks
    between compiled calls; the exit code is 128 + the signal's number."""

    def __init__(self):
        self.exit_code = None
        self._previous = {}

    def __enter__(self):
        for signum in (getattr(signal, name) for name in STOP_SIGNALS):
            self._previous[signum] = signal.signal(signum, self._handler(128 + signum))
        return self

    def _handler(self, code):
        def handle(signum, frame):
            self.exit_code = code

        return handle

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def next_boundary(step: int, cfg: Config) -> int:
    """The next step at which the loop must stop the compiled chunk."""
    cadences = (
        cfg.train.steps_per_execution,
        cfg.train.log_every_steps,
        cfg.eval.every_steps,
        cfg.checkpoint.every_steps,
    )
    profiled = [cfg.profile.start_step, cfg.profile.stop_step] if cfg.profile.stop_step else []
    later = [boundary for boundary in profiled if boundary > step]
    return min([cfg.train.steps, *later] + [(step // every + 1) * every for every in cadences])


def train_and_evaluate(cfg: Config) -> dict:
    """Trains `cfg` to `train.steps` (resuming from run_dir) and returns the final metrics."""
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    cluster = make_cluster(cfg.distribute)
    agree(cluster, settings_of(cfg), "their settings")
    keras.utils.set_random_seed(cfg.seed)
    task = make_task(cfg)
    # Before anything is written: bad data, an error in the model (built on a real batch), or
    # in the train step (traced by a call that runs zero steps) stops the run here.
    source = task.source(cfg.data)
    trainer = Trainer(cfg, cluster, task, source)
    trainer.train_steps(training_batches(cfg, cluster, source, 0), tf.constant(0, tf.int32))
    check_metric_keys(cfg, trainer)
    if cluster.is_chief:
        prepare_run_dir(cfg.run_dir)
    with RunDirLock(cfg.run_dir, enabled=cluster.is_chief):
        return _train(cfg, cluster, task, source, trainer)


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


def _train(cfg: Config, cluster, task: Task, source, trainer: Trainer) -> dict:
    run_dir = cfg.run_dir
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    record = read_run_json(run_dir) if has_checkpoints(checkpoint_dir) else None
    check_same_identity(record, cfg, identity_keys(task))
    keeper = CheckpointKeeper(
        trainer.checkpoint, checkpoint_dir, cfg.checkpoint.max_to_keep, cluster.is_chief
    )
    restored = keeper.restore_latest(cfg.checkpoint.allow_fresh_start)
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
        record = start_segment(record, cfg, cluster, step)
        changed = record["segments"][-1]["changed"]
        if changed:
            listed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
            print(f"changed settings (recorded in run.json): {listed}", file=sys.stderr)
        write_json(os.path.join(run_dir, "run.json"), record)

    iterator = training_batches(cfg, cluster, source, step)
    held_out, eval_batches = trainer.held_out(source.eval_dataset(cfg.eval.batch_size))
    run_log = RunLog(
        run_dir, cfg.train.steps, step, trainer.progress_fields, enabled=cluster.is_chief
    )
    last_saved, last_logs, profiling = restored, {}, False
    try:
        with _SignalFlag() as signals:
            interval_start, interval_steps = time.perf_counter(), 0
            while step < cfg.train.steps:
                if cfg.profile.stop_step and step == cfg.profile.start_step and cluster.is_chief:
                    tf.profiler.experimental.start(os.path.join(run_dir, "tensorboard"))
                    profiling = True
                chunk = next_boundary(step, cfg) - step
                first_bad = int(trainer.train_steps(iterator, tf.constant(chunk, tf.int32)))
                if first_bad >= 0:
                    raise Diverged(
                        f"training diverged at step {step + first_bad + 1}: the loss is "
                        f"not finite; last good checkpoint: {_name(last_saved)}"
                    )
                step += chunk
                interval_steps += chunk
                if step == cfg.profile.stop_step and profiling:
                    tf.profiler.experimental.stop()
                    profiling = False
                run_log.advance(chunk)
                logs = {}
                if step % cfg.train.log_every_steps == 0 or step == cfg.train.steps:
                    elapsed = time.perf_counter() - interval_start
                    logs.update(trainer.collect_train_logs())
                    logs["steps_per_sec"] = interval_steps / elapsed
                if step % cfg.eval.every_steps == 0 or step == cfg.train.steps:
                    with trainer.averaged_weights():
                        logs.update(trainer.evaluate(held_out, eval_batches))
                if logs:
                    run_log.write(step, logs)
                    last_logs.update(logs)
                bad = [key for key, value in logs.items() if not math.isfinite(value)]
                if bad:
                    raise Diverged(
                        f"training diverged by step {step}: {bad[0]}={logs[bad[0]]} is not "
                        f"finite; last good checkpoint: {_name(last_saved)}"
                    )
                stop = stop_code(cluster, signals.exit_code)  # the same on every worker
                stop_early = False
                if best is not None and "eval_loss" in logs:
                    trainer.step.assign(step)
                    best.consider(step, logs)
                    stop_early = best.exhausted
                if (
                    step % cfg.checkpoint.every_steps == 0
                    or step == cfg.train.steps
                    or stop is not None
                    or stop_early
                ):
                    if not trainer.weights_finite():
                        raise Diverged(
                            f"training diverged by step {step}: the model weights are "
                            f"not finite; last good checkpoint: {_name(last_saved)}"
                        )
                    trainer.step.assign(step)
                    keeper.save(step)
                    last_saved = step
                if stop is not None:
                    raise Stop(stop, step)
                if stop_early:
                    print(_stopped_early(best, step), file=sys.stderr)
                    break
                if logs.get("steps_per_sec"):
                    interval_start, interval_steps = time.perf_counter(), 0
    finally:
        if profiling:  # the run ended inside the profiled range
            tf.profiler.experimental.stop()
        run_log.close()
        if cluster.is_chief and last_saved is not None:  # how far this segment got, saved
            record["segments"][-1]["end_step"] = last_saved
            with contextlib.suppress(RunError):  # never hide the error that ended the run
                write_json(os.path.join(run_dir, "run.json"), record)
    result = {
        "step": step,
        **last_logs,
        **(best.summary() if best is not None else {}),
        "tracing_count": trainer.tracing_count,
        "weights_sha256": trainer.weights_digest(),
        "chief": cluster.is_chief,
    }
    if cluster.is_chief:
        write_json(os.path.join(run_dir, "final_metrics.json"), result)
    return result


def _stopped_early(best: BestKeeper, step: int) -> str:
    best_step, value = best.best
    return (
        f"stopped early at step {step}: {best.metric} did not improve for {best.patience} "
        f"evaluations; best: step {best_step} ({best.metric}={value:.6g}) in "
        f"{best.directory} (checkpoint.which=best for evaluate and export)"
    )


def _name(step: int | None) -> str:
    return "none" if step is None else f"ckpt-{step}"
