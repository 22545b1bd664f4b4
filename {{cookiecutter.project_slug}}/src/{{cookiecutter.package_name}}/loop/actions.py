"""What the outer loop does between compiled chunks: a list of actions, each with one job.

The driver (`controller._train`) runs the compiled steps up to the next step some action asks
for, then calls, in list order, every action due there. `built_in_actions` is the one place
where the order that matters is decided:

    training logs -> evaluation -> the metrics line -> divergence -> stop signals
    -> best checkpoint and early stopping -> checkpoint -> your actions -> profiler

so an action sees the values the ones before it put in `boundary.logs`, and a checkpoint of the
step is on disk before your actions run.

Your own action (a class anywhere on the import path) is added by config, with its arguments:

    python -m {{ cookiecutter.package_name }}.train \
        '+actions.hello={_target_: my_actions.PrintLoss, every_steps: 100}'

    class PrintLoss(Action):
        def __init__(self, every_steps=100):
            self.every_steps = every_steps

        def __call__(self, run, boundary):
            if run.is_chief:
                print(boundary.step, boundary.logs.get("loss"))

`actions=[confusion_matrix]` picks the shipped ones by name (`conf/actions/`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import signal
from typing import Any

import tensorflow as tf

from ..errors import STOP_SIGNALS, ConfigError, Diverged

__all__ = ["Action", "Boundary", "Run", "built_in_actions", "next_boundary", "user_actions"]


@dataclasses.dataclass
class Boundary:
    """One step boundary between compiled chunks, as every action there sees and shares it."""

    step: int
    last: bool  # the run's last step (train.steps)
    steps: int  # steps trained by the chunk that ended here
    seconds: float  # the chunk's wall time
    # This boundary's values, filled in list order: training logs, then evaluation (`eval_*`).
    logs: dict[str, float] = dataclasses.field(default_factory=dict)
    stop: int | None = None  # a stop signal's exit code, the same on every worker
    stop_early: bool = False  # the best checkpoint's patience ran out
    saved: bool = False  # a checkpoint of this step is on disk


@dataclasses.dataclass
class Run:
    """What an action may read: the run's config, task, model and files."""

    cfg: Any
    task: Any
    trainer: Any
    cluster: Any
    source: Any  # the task's data (`task.source`): `eval_dataset(batch_size)` for held-out batches
    last_saved: int | None = None  # the step of the newest checkpoint, None before the first
    logs: dict[str, float] = dataclasses.field(default_factory=dict)  # latest value of each key
    result: dict | None = None  # the final metrics once the loop finished (None if it stopped)

    @property
    def run_dir(self) -> str:
        return self.cfg.run_dir

    @property
    def model(self):
        return self.trainer.model

    @property
    def is_chief(self) -> bool:
        """Actions run on every worker; only the chief writes files."""
        return self.cluster.is_chief


class Action:
    """One job at a cadence: at every multiple of `every_steps` and at the last step.

    `every_steps = None` runs it at every boundary (the loop stops at least at every
    `train.log_every_steps`). Override `__call__`; `check`, `begin` and `end` are optional.
    """

    every_steps: int | None = None

    def check(self, run: Run) -> None:
        """Before anything is written (the model is built): raise `RunError` with one line if
        this action cannot run on this task or config."""

    def begin(self, run: Run, step: int) -> None:
        """Once, before the first chunk; `step` is where the run starts (0 or the resumed one)."""

    def __call__(self, run: Run, boundary: Boundary) -> None:
        """At each boundary where `due` holds."""

    def end(self, run: Run) -> None:
        """Once, however the loop ended (finished, stopped, diverged): release what you hold."""

    def due(self, boundary: Boundary) -> bool:
        every = self.every_steps
        return not every or boundary.last or boundary.step % every == 0

    def next_step(self, step: int) -> int | None:
        """The next step after `step` at which this action needs the loop to stop a chunk."""
        every = self.every_steps
        return (step // every + 1) * every if every else None


def next_boundary(step: int, cfg, actions=()) -> int:
    """The next step at which the loop must stop the compiled chunk: the nearest cadence of
    `train.steps_per_execution`, the built-in cadences and every action's."""
    cadences = (
        cfg.train.steps_per_execution,
        cfg.train.log_every_steps,
        cfg.eval.every_steps,
        cfg.checkpoint.every_steps,
    )
    wanted = [(step // every + 1) * every for every in cadences]
    wanted += [later for later in (action.next_step(step) for action in actions) if later]
    return min([cfg.train.steps, *wanted])


# -- the built-in actions, in the order `built_in_actions` lists them ----------------------------
class TrainingLogs(Action):
    """Every `train.log_every_steps`: the training metrics and steps per second (of the compiled
    chunks only: evaluation and checkpoints are not counted)."""

    def __init__(self, trainer, every_steps: int):
        self.trainer, self.every_steps = trainer, every_steps
        self.steps, self.seconds = 0, 0.0

    def due(self, boundary):
        return True  # counts every chunk

    def __call__(self, run, boundary):
        self.steps += boundary.steps
        self.seconds += boundary.seconds
        if super().due(boundary):
            boundary.logs.update(self.trainer.collect_train_logs())
            boundary.logs["steps_per_sec"] = self.steps / max(self.seconds, 1e-9)
            self.steps, self.seconds = 0, 0.0


class Evaluate(Action):
    """Every `eval.every_steps`: the held-out metrics, with the weight averages if any."""

    def __init__(self, trainer, held_out, num_batches: int, every_steps: int):
        self.trainer, self.held_out, self.num_batches = trainer, held_out, num_batches
        self.every_steps = every_steps

    def __call__(self, run, boundary):
        with self.trainer.averaged_weights():
            boundary.logs.update(self.trainer.evaluate(self.held_out, self.num_batches))


class TaskFigures(Action):
    """At each evaluation, the task's own pictures (`Task.figures`: a GAN's samples), with the
    weight averages if any: as TensorBoard images (run `figures`) and as `run_dir/<name>.png`,
    the newest, beside `curves.png`."""

    def __init__(self, trainer, source, every_steps: int):
        self.trainer, self.source, self.every_steps = trainer, source, every_steps
        self.writer = None

    def begin(self, run, step):
        if run.is_chief:
            directory = os.path.join(run.run_dir, "tensorboard", "figures")
            self.writer = tf.summary.create_file_writer(directory)

    def __call__(self, run, boundary):
        with self.trainer.averaged_weights():
            figures = self.trainer.task.figures(self.trainer.models, self.source, boundary.step)
        if not run.is_chief:
            return
        from ..storage import storage_error

        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80)
            png = buffer.getvalue()
            path = os.path.join(run.run_dir, f"{name}.png")
            try:
                with self.writer.as_default(step=boundary.step):
                    tf.summary.image(name, tf.image.decode_png(png)[None])
                self.writer.flush()
                with open(f"{path}.tmp", "wb") as file:  # whole or not at all
                    file.write(png)
                os.replace(f"{path}.tmp", path)
            except (OSError, tf.errors.OpError) as error:  # no space, a file in the way...
                with contextlib.suppress(OSError):
                    os.remove(f"{path}.tmp")
                raise storage_error(path, error) from None

    def end(self, run):
        if self.writer is not None:
            self.writer.close()


class MetricsLine(Action):
    """At every boundary: the progress bar; where there are values, a line of metrics.jsonl
    and TensorBoard scalars (on the chief)."""

    def __init__(self, run_log):
        self.run_log = run_log

    def __call__(self, run, boundary):
        self.run_log.advance(boundary.steps)
        if boundary.logs:
            self.run_log.write(boundary.step, boundary.logs)
            run.logs.update(boundary.logs)

    def end(self, run):
        self.run_log.close()


class StopOnDivergence(Action):
    """At every boundary: a value that is not finite ends the run (exit 3), naming it and the
    last good checkpoint, before anything saves the diverged weights."""

    def __call__(self, run, boundary):
        bad = [key for key, value in boundary.logs.items() if not math.isfinite(value)]
        if bad:
            raise Diverged(
                f"training diverged by step {boundary.step}: {bad[0]}={boundary.logs[bad[0]]} "
                f"is not finite; last good checkpoint: {checkpoint_name(run.last_saved)}"
            )


class StopSignals(Action):
    """Turns every stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) into `boundary.stop`, the same
    on every worker (one all-gather per boundary on several): the checkpoint action saves this
    step, then the loop stops with 128 + the signal's number."""

    def __init__(self, stop_code):
        self.stop_code, self.exit_code, self.previous = stop_code, None, {}

    def begin(self, run, step):
        for signum in (getattr(signal, name) for name in STOP_SIGNALS):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        self.exit_code = 128 + signum

    def __call__(self, run, boundary):
        boundary.stop = self.stop_code(run.cluster, self.exit_code)

    def end(self, run):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        self.previous = {}


class KeepBest(Action):
    """At each evaluation: keeps the best checkpoint (`checkpoint.best_metric`) and says when
    `checkpoint.patience` evaluations in a row did not improve it."""

    def __init__(self, best, trainer):
        self.best, self.trainer = best, trainer

    def __call__(self, run, boundary):
        if "eval_loss" in boundary.logs:
            self.trainer.step.assign(boundary.step)
            self.best.consider(boundary.step, boundary.logs)
            boundary.stop_early = self.best.exhausted


class Checkpoint(Action):
    """Every `checkpoint.every_steps`, at the last step, and before any stop: saves the step,
    after checking that the weights are finite (a diverged model never overwrites a good one)."""

    def __init__(self, keeper, trainer, every_steps: int):
        self.keeper, self.trainer, self.every_steps = keeper, trainer, every_steps

    def due(self, boundary):
        return super().due(boundary) or boundary.stop is not None or boundary.stop_early

    def __call__(self, run, boundary):
        if not self.trainer.weights_finite():
            raise Diverged(
                f"training diverged by step {boundary.step}: the model weights are not "
                f"finite; last good checkpoint: {checkpoint_name(run.last_saved)}"
            )
        self.trainer.step.assign(boundary.step)
        self.keeper.save(boundary.step)
        run.last_saved, boundary.saved = boundary.step, True


class Profile(Action):
    """A TensorFlow Profiler trace of the steps after `profile.start_step` up to `stop_step`
    (on the chief; TensorBoard's Profile tab)."""

    def __init__(self, settings, directory: str):
        self.start, self.stop, self.directory = settings.start_step, settings.stop_step, directory
        self.on = False

    def next_step(self, step):
        later = [b for b in (self.start, self.stop) if b > step]
        return min(later) if later else None

    def due(self, boundary):
        return boundary.step in (self.start, self.stop)

    def begin(self, run, step):
        self._switch(step)

    def __call__(self, run, boundary):
        self._switch(boundary.step)

    def _switch(self, step):
        if step == self.stop and self.on:
            self.end(None)
        elif step == self.start and not self.on:
            tf.profiler.experimental.start(self.directory)
            self.on = True

    def end(self, run):
        if self.on:
            tf.profiler.experimental.stop()
            self.on = False


def built_in_actions(cfg, trainer, cluster, parts, user_actions=()) -> list[Action]:
    """The loop's actions in the order they run at a boundary: the one place that decides it.

    `parts`: what the actions work on (`run_log`, `held_out`, `eval_batches`, `keeper`, `best`,
    `stop_code`); `user_actions`: those of `actions=`, after the checkpoint.
    """
    actions = [
        TrainingLogs(trainer, cfg.train.log_every_steps),
        Evaluate(trainer, parts["held_out"], parts["eval_batches"], cfg.eval.every_steps),
        MetricsLine(parts["run_log"]),
        StopOnDivergence(),
        StopSignals(parts["stop_code"]),
    ]
    if trainer.task.has_figures():
        actions.insert(2, TaskFigures(trainer, parts["source"], cfg.eval.every_steps))
    if parts["best"] is not None:
        actions.append(KeepBest(parts["best"], trainer))
    actions.append(Checkpoint(parts["keeper"], trainer, cfg.checkpoint.every_steps))
    actions.extend(user_actions)
    if cfg.profile.stop_step and cluster.is_chief:
        actions.append(Profile(cfg.profile, os.path.join(cfg.run_dir, "tensorboard")))
    return actions


def checkpoint_name(step: int | None) -> str:
    return "none" if step is None else f"ckpt-{step}"


def user_actions(specs: dict) -> list[Action]:
    """The actions `actions=` names (`{name: {_target_: class, argument: value}}`), built by
    Hydra's `instantiate` before anything is written: a wrong one is one line naming it."""
    from hydra.utils import instantiate

    actions = []
    for name, spec in specs.items():
        key = f"actions.{name}"
        if not isinstance(spec, dict) or "_target_" not in spec:
            raise ConfigError(f"{key}={spec}: expected _target_ (a module.Class) and its arguments")
        try:
            action = instantiate(spec)
        except Exception as error:  # an import error or a wrong argument in the user's config
            cause = error.__cause__ or error
            raise ConfigError(f"{key}: {spec['_target_']}: {one_line(cause)}") from None
        if not isinstance(action, Action):
            base = f"{Action.__module__}.Action"
            raise ConfigError(f"{key}: {spec['_target_']} is not an Action (subclass {base})")
        every = action.every_steps
        if every is not None and (type(every) is not int or every <= 0):
            raise ConfigError(f"{key}.every_steps={every}: must be a positive integer or None")
        actions.append(action)
    return actions


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")
