"""The outer loop: restore, then train in chunks between cadence boundaries, then finish.

It owns what happens between compiled calls: evaluation, logs, checkpoints, run.json, signals.
Cadences (`train.log_every_steps`, `eval.every_steps`, `checkpoint.every_steps`) are exact at any
`train.steps_per_execution`: a chunk always ends on the next boundary.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import sys
import tempfile
import time

import keras
import tensorflow as tf

from .. import __version__
from ..config import Config, to_dict
from ..data import train_dataset
from ..errors import EXIT_SIGINT, EXIT_SIGTERM, Diverged, RunError
from ..tasks.base import Task, make_task
from .checkpoints import CheckpointKeeper, has_checkpoints
from .cluster import Cluster, make_cluster
from .logs import RunLog
from .trainer import Trainer

log = logging.getLogger(__name__)

# Keys whose change makes a run_dir's checkpoints unusable (the model or its inputs differ),
# besides the task's own `Task.identity_keys`.
IDENTITY_KEYS = (
    "task._target_",
    "data.path",
    "optimizer.name",
    "optimizer.head_learning_rate",
    "precision.policy",
    "seed",
)


def identity_keys(task: Task) -> tuple[str, ...]:
    return IDENTITY_KEYS + tuple(f"task.{key}" for key in task.identity_keys)


class Stop(Exception):
    """Raised after a checkpoint was saved because a signal asked the run to stop."""

    def __init__(self, exit_code: int, step: int):
        super().__init__(f"stopped at step {step}")
        self.exit_code, self.step = exit_code, step


def prepare_run_dir(run_dir: str) -> None:
    """Creates run_dir and proves it writable, or raises RunError."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise RunError(f"run_dir={run_dir}: not writable ({error.strerror})") from None


def write_json(path: str, payload: dict) -> None:
    """Writes atomically: a reader never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=2)
        file.write("\n")
    os.replace(tmp, path)


def _leaves(config, prefix: str = "") -> dict:
    """{"model": {"hidden_units": 64}} -> {"model.hidden_units": 64}."""
    if not isinstance(config, dict):
        return {prefix: config}
    leaves = {}
    for key, value in config.items():
        leaves.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return leaves


def check_same_identity(run_dir: str, cfg: Config, keys: tuple[str, ...]) -> None:
    """Refuses a run_dir whose checkpoints come from a different model or data config: one
    whose run.json differs from `cfg` in one of `keys`."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as file:
        saved = _leaves(json.load(file)["config"])
    current = _leaves(to_dict(cfg))
    for key in sorted(current):
        if key in keys and saved.get(key) != current[key]:
            raise RunError(
                f"run_dir={run_dir} holds checkpoints of a different config: {key} was "
                f"{saved.get(key)}, now {current[key]}; use a new run_dir or the old "
                "value"
            )


def run_metadata(cfg: Config, cluster: Cluster) -> dict:
    return {
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "strategy": cluster.name,
        "num_replicas": cluster.num_replicas,
        "num_workers": cluster.num_workers,
        "precision": cfg.precision.policy,
        "global_batch_size": cfg.train.batch_size,
        "per_replica_batch_size": cfg.train.batch_size // cluster.num_replicas,
        "versions": {
            "package": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }


class _SignalFlag:
    """Turns SIGTERM / SIGINT into a flag the loop checks between compiled calls."""

    def __init__(self):
        self.exit_code = None
        self._previous = {}

    def __enter__(self):
        for signum, code in ((signal.SIGTERM, EXIT_SIGTERM), (signal.SIGINT, EXIT_SIGINT)):
            self._previous[signum] = signal.signal(signum, self._handler(code))
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
    return min([cfg.train.steps] + [(step // every + 1) * every for every in cadences])


def train_and_evaluate(cfg: Config) -> dict:
    """Trains `cfg` to `train.steps` (resuming from run_dir) and returns the final metrics."""
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    cluster = make_cluster(cfg.distribute)
    keras.utils.set_random_seed(cfg.seed)
    run_dir = cfg.run_dir
    if cluster.is_chief:
        prepare_run_dir(run_dir)
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    task = make_task(cfg)
    if has_checkpoints(checkpoint_dir):
        check_same_identity(run_dir, cfg, identity_keys(task))

    arrays = task.arrays(cfg.data.path)
    trainer = Trainer(cfg, cluster, task, arrays.x_train)
    keeper = CheckpointKeeper(
        trainer.checkpoint, checkpoint_dir, cfg.checkpoint.max_to_keep, cluster.is_chief
    )
    restored = keeper.restore_latest(cfg.checkpoint.allow_fresh_start)
    step = restored or 0
    trainer.apply_configured_learning_rates()
    if restored is not None:
        print(f"resumed from {checkpoint_dir}/ckpt-{step}; next step {step + 1}", file=sys.stderr)
    if cluster.is_chief:
        write_json(os.path.join(run_dir, "run.json"), run_metadata(cfg, cluster))

    strategy = cluster.strategy
    iterator = iter(
        strategy.experimental_distribute_dataset(
            train_dataset(arrays.x_train, arrays.y_train, cfg.train.batch_size, cfg.seed, step)
        )
    )
    held_out, eval_batches = trainer.held_out(arrays.x_test, arrays.y_test, cfg.eval.batch_size)
    run_log = RunLog(
        run_dir, cfg.train.steps, step, trainer.progress_fields, enabled=cluster.is_chief
    )
    last_saved, last_logs = restored, {}
    try:
        with _SignalFlag() as signals:
            interval_start, interval_steps = time.perf_counter(), 0
            while step < cfg.train.steps:
                chunk = next_boundary(step, cfg) - step
                first_bad = int(trainer.train_steps(iterator, tf.constant(chunk, tf.int32)))
                if first_bad >= 0:
                    raise Diverged(
                        f"training diverged at step {step + first_bad + 1}: the loss is "
                        f"not finite; last good checkpoint: {_name(last_saved)}"
                    )
                step += chunk
                interval_steps += chunk
                run_log.advance(chunk)
                logs = {}
                if step % cfg.train.log_every_steps == 0 or step == cfg.train.steps:
                    elapsed = time.perf_counter() - interval_start
                    logs.update(trainer.collect_train_logs())
                    logs["steps_per_sec"] = interval_steps / elapsed
                if step % cfg.eval.every_steps == 0 or step == cfg.train.steps:
                    logs.update(trainer.evaluate(held_out, eval_batches))
                if logs:
                    run_log.write(step, logs)
                    last_logs.update(logs)
                if (
                    step % cfg.checkpoint.every_steps == 0
                    or step == cfg.train.steps
                    or signals.exit_code is not None
                ):
                    if not trainer.weights_finite():
                        raise Diverged(
                            f"training diverged by step {step}: the model weights are "
                            f"not finite; last good checkpoint: {_name(last_saved)}"
                        )
                    trainer.step.assign(step)
                    keeper.save(step)
                    last_saved = step
                if signals.exit_code is not None:
                    raise Stop(signals.exit_code, step)
                if logs.get("steps_per_sec"):
                    interval_start, interval_steps = time.perf_counter(), 0
    finally:
        run_log.close()
    result = {
        "step": step,
        **last_logs,
        "tracing_count": trainer.tracing_count,
        "weights_sha256": trainer.weights_digest(),
        "chief": cluster.is_chief,
    }
    if cluster.is_chief:
        write_json(os.path.join(run_dir, "final_metrics.json"), result)
    return result


def _name(step: int | None) -> str:
    return "none" if step is None else f"ckpt-{step}"
