"""Benchmark: steps/s of this project's training command against Keras' own `model.fit`.

A round of the fit section (3 tasks) takes about 4.5 min on 2 CPU cores, the other sections
1-3 min a round each; `key=value` overrides apply to every run:

    python -m {{ cookiecutter.package_name }}.bench
    python -m {{ cookiecutter.package_name }}.bench --sections fit --rounds 5 --json bench.json
    python -m {{ cookiecutter.package_name }}.bench train.batch_size=256

Sections; each alternates its variants (in a rotating order) for `--rounds` rounds and reports
the median, min and max steps/s:

* `fit`: the training command (`train_and_evaluate`, with logging, evaluation and checkpoints at
  their configured cadences, into a temporary run_dir) against `model.fit` on the same model,
  loss, optimizer, metric, batch and tf.data pipeline (`jit_compile=False`, like the loop's
  default; see `xla`). Each as a researcher runs it, in a process of its own: the training
  command with the thread pools it picks for the model (`loop_alone`, `loop/threads.py`), and
  fit with TensorFlow's default pools at `steps_per_execution` 1 and 32 (`ratio` = loop_alone /
  the faster). And both in one process, the one the section runs in, with the training
  command's pools: the loop (`loop`) and fit at 1, 8 and 32 (`ratio_same_threads`).
* `breakdown`: where a step's time goes, as fractions of it. Inside the compiled step (on one
  constant batch, so the input pipeline is apart): the gradient norm and its all-reduce, the
  metric updates, and what is left (the model's forward and backward passes and the
  optimizer), each found by timing the step without it. Around it, from one run of the
  training command: the compiled calls, each action of the loop (logs, evaluation, the
  metrics line, checkpoints...) and the rest, over the wall time past the warm-up.
* `steps_per_execution`: the training command at several `train.steps_per_execution` (a chunk
  also ends at every log, evaluation and checkpoint step, so values above
  `train.log_every_steps` change nothing).
* `precision`: the loop under each precision policy on a wide preset (`PRECISION_PRESET`: the
  task 1024 wide, batches of 1024), against this machine's own limit: the FLOP rate of the
  preset's largest matmul in each dtype (float32, bfloat16, float16; a chain of them in one
  compiled call, the best of several), and the preset's achieved rate (its FLOPs per step,
  counted by TensorFlow's profiler on the traced step, times its steps/s) as a fraction of
  that peak. Each policy runs twice: on the task's model, and on its matmuls alone
  (`matmuls_only`: the same loop, data and batch, the model's chain of kernels without
  activations, noise, penalties or heads), which is the loop's own limit on that arithmetic.
* `checkpoint`: the loop with checkpoints at the configured cadence and at a fifth of it,
  against checkpoints effectively off (only the final one is written).
* `input`: the loop's compiled steps on the real pipeline against one constant batch repeated.
* `files`: the training command reading the task's data from shards (`data.files`, written by
  `prepare` into a temporary directory) against the same data in memory; the compiled steps on
  the shards against one constant batch; and the seconds a resumed run waits for its first
  batch, resumed at an epoch's start and at its last step.
* `memory`: peak resident memory (RSS) of a training process on the `regression` task with
  `--memory-examples` and ten times as many training examples (256 features), in memory and
  from shards; each run in its own process, 200 steps.
* `xla`: the loop (on one device) and `model.fit` (steps_per_execution 32) without and with XLA.

Each section (and the fit section's each task) runs in a process of its own, whose thread
pools the training command's rule picks for that section's model (`threads.*`; the wide preset
of `precision` gets other pools than the shipped tasks); one section alone runs in this process.

How steps/s is taken, the same rule for the loop and for `fit`: the steps after a warm-up
(`warmup_steps`, 500 by default: past the tracing and the first log line, evaluation and
checkpoint, which cost once per run), over the wall time from the end of the first compiled
call past the warm-up to the end of training (the loop: its run log closed after the final
evaluation and checkpoint; `fit`: its last compiled call), before either tears down its
iterators. The loop's time includes every log line, evaluation and checkpoint in it; `fit`
evaluates and saves nothing.
`loop_compute_only` (in `fit`) and `precision` instead read the loop's own `metrics.jsonl`
`steps_per_sec` over the same steps (time inside compiled calls only): in `fit` the two loop
figures give what logs, evaluation and checkpoints cost; in `precision` one ~50 MB checkpoint
of the wide model does not blur the comparison of arithmetic.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

SECTIONS = (
    "fit",
    "breakdown",
    "steps_per_execution",
    "precision",
    "checkpoint",
    "input",
    "files",
    "memory",
    "xla",
)
FIT_STEPS_PER_EXECUTION = (1, 8, 32)
# fit in a process of its own, as a researcher runs it
FIT_ALONE_STEPS_PER_EXECUTION = (1, 32)
LOOP_STEPS_PER_EXECUTION = (1, 10, 25, 100)
PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# Applied before the command line's overrides, so those still win.
PRECISION_PRESET = ("task.hidden_units=1024", "train.batch_size=1024")
CHECKPOINTS_OFF = 10**9


# -- what it runs on -----------------------------------------------------------------------------
def cpu_info() -> dict:
    """CPU model, core count and whether it has AVX512-BF16 (None: unknown, not Linux)."""
    info = {
        "model": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "avx512_bf16": None,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name":
                    info["model"] = value
                elif key == "flags":
                    info["avx512_bf16"] = "avx512_bf16" in value.split()
                    break  # the first processor describes them all
    except OSError:
        pass
    return info


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def alternate(variants: dict, rounds: int) -> dict:
    """Calls every variant once per round, rotating the order; {name: summary of its rates}."""
    names, rates = list(variants), {name: [] for name in variants}
    _reset_keras()
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(variants[name]())
            _reset_keras()
    return {name: summary(values) for name, values in rates.items()}


def _reset_keras() -> None:
    """Between runs: float32, fresh Keras state, and the survivors of earlier runs frozen, so a
    full garbage collection inside a later run does not walk them (it cost up to 2 s here)."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)
    gc.collect()
    gc.freeze()


def warmup_steps(cfg) -> int:
    """Steps left out of every timing: the longest of the cadences (log, eval, checkpoint)
    that fire in the first half of the run, 500 by default. By then the train and eval steps
    are traced and a first log line, evaluation and checkpoint are written; what those cost
    once per run is not a rate. The clock starts at the end of the first compiled call past it."""
    cadences = (cfg.train.log_every_steps, cfg.eval.every_steps, cfg.checkpoint.every_steps)
    return max((every for every in cadences if every <= cfg.train.steps // 2), default=0)


def rate_after(warmup: int, call_ends: list[tuple[int, float]], end: tuple[int, float]) -> float:
    """Steps/s from the end of the first call past `warmup` steps to `end` ((step, time))."""
    start_step, start = next((step, at) for step, at in call_ends if step > warmup)
    return (end[0] - start_step) / (end[1] - start)


def logged_rate(records: list[dict], after: int) -> float:
    """Steps/s inside compiled calls, from the `steps_per_sec` of `metrics.jsonl` lines past step
    `after`: their steps over their summed times (a median of the lines' rates would read high
    when a few intervals are slow)."""
    steps = seconds = 0.0
    previous = 0
    for record in records:
        if "steps_per_sec" in record and record["step"] > after:
            interval = record["step"] - previous
            steps, seconds = steps + interval, seconds + interval / record["steps_per_sec"]
        previous = record["step"] if "steps_per_sec" in record else previous
    return steps / seconds if seconds else float("nan")


# -- the two things measured ---------------------------------------------------------------------
def train_patched(cfg, replacements: dict, after=None):
    """Runs the training command on `cfg` in a temporary run_dir with each `controller.<name>`
    of `replacements` replaced, stderr to a buffer (no progress bar between the table's lines);
    returns `after(run_dir)` (before the directory goes)."""
    from unittest import mock

    from .loop import controller

    with tempfile.TemporaryDirectory(prefix="bench-") as run_dir, contextlib.ExitStack() as stack:
        cfg.run_dir = run_dir
        for name, replacement in replacements.items():
            stack.enter_context(mock.patch.object(controller, name, replacement))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        controller.train_and_evaluate(cfg)
        return after(run_dir) if after else None


class Bench:
    """Builds the configs of every run from the command line's overrides and times the runs."""

    def __init__(self, overrides: list[str], steps: int | None):
        from .config import load_config

        self.overrides = list(overrides)
        self.base = load_config(self.overrides)  # a bad override fails here, before any run
        self.steps = steps or self.base.train.steps

    def config(
        self,
        *extra: str,
        steps: int | None = None,
        first: tuple[str, ...] = (),
        task: str | None = None,
    ):
        from .config import load_config

        return load_config(
            [
                *([f"task={task}"] if task else []),
                *first,
                *(self.applicable(self.overrides, task) if task else self.overrides),
                *extra,
                f"train.steps={steps or self.steps}",
                "run_dir=unused",
            ]
        )

    def applicable(self, overrides, task: str | None = None) -> tuple[str, ...]:
        """The `overrides` that `task` (default: the selected task) can take: a `task.<key>`
        its config lacks is left out, and so is a `task=` choice when `task` is given, so every
        preset and the command line's overrides run on every task (the wide preset widens what
        it can)."""
        import dataclasses

        from .config import load_config
        from .tasks.base import task_class

        target = load_config([f"task={task}"]).task._target_ if task else self.base.task._target_
        keys = {field.name for field in dataclasses.fields(task_class(target).config_class)}

        def applies(override: str) -> bool:
            key = override.split("=")[0].lstrip("+~")
            if key == "task":
                return task is None
            return not key.startswith("task.") or key[len("task.") :] in keys

        return tuple(override for override in overrides if applies(override))

    def loop(self, cfg, replacements: dict | None = None) -> dict:
        """Runs the training command once into a temporary run_dir (with `replacements` of
        names in its module, as `train_patched`); its two rates."""
        from .loop.logs import RunLog, read_metrics

        call_ends, closed = [], []

        class ClockedRunLog(RunLog):
            def advance(self, steps):
                super().advance(steps)
                done = steps + (call_ends[-1][0] if call_ends else 0)
                call_ends.append((done, time.perf_counter()))

            def close(self):  # after the final evaluation and checkpoint
                super().close()
                # Also runs when training raised: never hide that error behind our own.
                closed.append((call_ends[-1][0] if call_ends else 0, time.perf_counter()))

        replacements = {**(replacements or {}), "RunLog": ClockedRunLog}
        records = train_patched(cfg, replacements, read_metrics)
        warmup = warmup_steps(cfg)
        return {
            "wall": rate_after(warmup, call_ends, closed[0]),
            "compute": logged_rate(records, next(step for step, _ in call_ends if step > warmup)),
        }

    def timed_loop(self, cfg) -> dict:
        """One run of the training command with each action of the loop timed: the fractions of
        the wall time past the warm-up spent in compiled calls, in each action, and elsewhere."""
        from .loop import actions as loop_actions

        warmup = warmup_steps(cfg)
        seconds: dict[str, float] = {"compiled_calls": 0.0}
        marks = []

        class Timed:  # an action, its time counted
            def __init__(self, action):
                self.action, self.name = action, type(action).__name__

            def __getattr__(self, name):  # every_steps, due, next_step, begin, end...
                return getattr(self.action, name)

            def __call__(self, run, boundary):
                start = time.perf_counter()
                self.action(run, boundary)
                if boundary.step > warmup:
                    seconds[self.name] = seconds.get(self.name, 0.0)
                    seconds[self.name] += time.perf_counter() - start

        class Clock(loop_actions.Action):  # first at every boundary: a chunk just ended
            every_steps = 0

            def __call__(self, run, boundary):
                marks.append((boundary.step, time.perf_counter() - boundary.seconds))
                if boundary.step > warmup:
                    seconds["compiled_calls"] += boundary.seconds

        def built_in(*args, **kwargs):
            return [Clock(), *map(Timed, loop_actions.built_in_actions(*args, **kwargs))]

        train_patched(cfg, {"built_in_actions": built_in})
        # From the start of the first chunk past the warm-up to the end of the run.
        wall = time.perf_counter() - next(at for step, at in marks if step > warmup)
        fractions = {name: value / wall for name, value in seconds.items()}
        fractions["other"] = max(0.0, 1 - sum(fractions.values()))
        return fractions

    def tasks(self, names: str | None) -> list[str]:
        """The tasks of `--tasks` (checked), or every shipped task."""
        from .config import ConfigError
        from .tasks.base import shipped_tasks

        shipped = shipped_tasks()
        if names is None:
            return shipped
        chosen = [name.strip() for name in names.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in shipped]
        if unknown or not chosen:
            raise ConfigError(f"--tasks={names}: choose from {', '.join(shipped)}")
        return chosen

    def wall(self, *extra: str) -> float:
        """The training command's steps/s with `extra` overrides (the rate every section uses)."""
        return self.loop(self.config(*extra))["wall"]

    def fit(self, cfg, steps_per_execution: int, jit_compile: bool = False) -> float:
        """`model.fit` on the loop's model, loss, metrics and pipeline; its steps/s. The
        optimizer is Keras' own class, as a researcher's script has it (the training command's
        Adam updates each variable in one fused kernel: `loop/optimizers.py`).

        One optimizer at `optimizer.learning_rate` (fit has no `head_learning_rate`), on one
        device whatever `distribute` says: Keras 3.15's fit under a MirroredStrategy failed
        here ("You must feed a value for placeholder tensor", keras-team/keras#19246).
        """
        import keras

        from .data import train_dataset
        from .loop.optimizers import KERAS_OPTIMIZER_CLASSES
        from .tasks.base import make_task

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.call_ends = []

            def on_train_batch_end(self, batch, logs=None):  # once per compiled call
                self.call_ends.append(
                    ((len(self.call_ends) + 1) * steps_per_execution, time.perf_counter())
                )

        keras.utils.set_random_seed(cfg.seed)
        keras.mixed_precision.set_global_policy(cfg.precision.policy)
        task = make_task(cfg)
        arrays = task.arrays(cfg.data.path)
        model = task.build_model()
        optimizer = KERAS_OPTIMIZER_CLASSES[cfg.optimizer.name](
            learning_rate=cfg.optimizer.learning_rate, global_clipnorm=cfg.train.clip_norm or None
        )
        loss = task.build_loss()
        weights = task.loss_weights()  # Keras wants one weight per output loss
        model.compile(
            optimizer=optimizer,
            loss=loss,
            loss_weights={name: weights.get(name, 1.0) for name in loss}
            if isinstance(loss, dict)
            else None,
            metrics=task.build_metrics(),
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        )  # mixed_float16: compile adds loss scaling
        warmup = warmup_steps(cfg)
        calls = max(warmup // steps_per_execution + 2, -(-cfg.train.steps // steps_per_execution))
        clock = Clock()
        model.fit(
            train_dataset(arrays.x_train, arrays.y_train, cfg.train.batch_size, cfg.seed),
            epochs=1,
            steps_per_epoch=calls * steps_per_execution,
            verbose=0,
            callbacks=[clock],
        )
        return rate_after(warmup, clock.call_ends, clock.call_ends[-1])

    def fit_alone(self, task: str, steps_per_execution: int) -> float:
        """`fit` on `task` in a new process with TensorFlow's default thread pools (what a
        researcher's own script gets); its steps/s."""
        return self._alone(task, "--fit-alone", str(steps_per_execution))

    def loop_alone(self, task: str) -> dict:
        """The training command on `task` in a new process, which picks its own thread pools
        (as `python -m ... .train` does); its two rates, as `loop`."""
        return self._alone(task, "--loop-alone")

    def _alone(self, task: str, *flag: str):
        """Runs `flag` of this module on `task` in a new process; the JSON of its last line."""
        import subprocess

        command = [sys.executable, "-m", f"{__package__}.bench", *flag]
        command += ["--steps", str(self.steps), f"task={task}"]
        command += self.applicable(self.overrides, task)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()[-400:]}")
        return json.loads(done.stdout.splitlines()[-1])

    def steps_on(self, cfg, constant: bool, modify=None) -> float:
        """The loop's compiled steps alone, `train.steps_per_execution` per call, on the real
        pipeline or on its first batch repeated; steps/s after the first call. `modify(trainer)`
        changes the trainer before its step is traced (`breakdown`)."""
        import tensorflow as tf

        from .loop.cluster import make_cluster
        from .loop.trainer import Trainer
        from .tasks.base import make_task

        task = make_task(cfg)
        source = task.source(cfg.data)
        cluster = make_cluster(cfg.distribute)
        trainer = Trainer(cfg, cluster, task, source)
        if modify is not None:
            modify(trainer)
        batch, seed = cfg.train.batch_size, cfg.seed
        batches = source.train_batches(cluster.strategy, batch, seed, 0)
        if constant:  # the first global batch, read on one device
            first = next(iter(source.train_batches(tf.distribute.get_strategy(), batch, seed, 0)))
            dataset = tf.data.Dataset.from_tensors(first).repeat()
            batches = cluster.strategy.experimental_distribute_dataset(dataset)
        iterator = iter(batches)
        chunk = tf.constant(cfg.train.steps_per_execution, tf.int32)
        calls = max(2, -(-cfg.train.steps // cfg.train.steps_per_execution))
        int(trainer.train_steps(iterator, chunk))
        start = time.perf_counter()
        for _ in range(calls - 1):
            int(trainer.train_steps(iterator, chunk))
        return (calls - 1) * cfg.train.steps_per_execution / (time.perf_counter() - start)


# -- the sections --------------------------------------------------------------------------------
def _fit_on(bench: Bench, rounds: int, task: str) -> dict:
    compute, compute_alone = [], []

    def loop():
        rates = bench.loop(bench.config(task=task))
        compute.append(rates["compute"])
        return rates["wall"]

    def loop_alone():
        rates = bench.loop_alone(task)
        compute_alone.append(rates["compute"])
        return rates["wall"]

    variants = {"loop_alone": loop_alone, "loop": loop}
    for spe in FIT_STEPS_PER_EXECUTION:
        variants[f"fit_spe{spe}"] = lambda spe=spe: bench.fit(bench.config(task=task), spe)
    for spe in FIT_ALONE_STEPS_PER_EXECUTION:
        variants[f"fit_spe{spe}_alone"] = lambda spe=spe: bench.fit_alone(task, spe)
    result = alternate(variants, rounds)

    def fastest(names):
        return max(names, key=lambda name: result[name]["median"])

    alone = fastest([f"fit_spe{spe}_alone" for spe in FIT_ALONE_STEPS_PER_EXECUTION])
    same = fastest([f"fit_spe{spe}" for spe in FIT_STEPS_PER_EXECUTION])
    result["loop_compute_only"] = summary(compute)
    result["loop_alone_compute_only"] = summary(compute_alone)
    result["best_fit"], result["best_fit_same_threads"] = alone, same
    # Each as a researcher runs it, in a process of its own.
    result["ratio"] = result["loop_alone"]["median"] / result[alone]["median"]
    result["ratio_same_threads"] = result["loop"]["median"] / result[same]["median"]
    # Steps/s lost to the work between compiled calls (logs, evaluation, checkpoints).
    result["overhead_percent"] = 100 * (1 - result["loop"]["median"] / statistics.median(compute))
    return result


def section_breakdown(bench: Bench, rounds: int) -> dict:
    """Fractions of the step's time: in the compiled step, and in the loop around it."""
    variants = {
        "full_step": lambda: bench.steps_on(bench.config(), constant=True),
        "without_grad_norm": lambda: bench.steps_on(bench.config(), True, _without_grad_norm),
        "without_metrics": lambda: bench.steps_on(bench.config(), True, _without_metrics),
    }
    rates = alternate(variants, rounds)
    full = 1 / rates["full_step"]["median"]
    step = {
        part: max(0.0, 1 - (1 / rates[f"without_{part}"]["median"]) / full)
        for part in ("grad_norm", "metrics")
    }
    step["model_and_optimizer"] = 1 - sum(step.values())
    loop = bench.timed_loop(bench.config())
    return {**rates, "step_ms": 1000 * full, "in_step": step, "in_loop": loop}


def _without_grad_norm(trainer) -> None:
    """The step without the gradient norm (nor its all-reduce on several replicas)."""
    import tensorflow as tf

    trainer.modify_gradients = lambda gradients, loss_scale: (gradients, tf.constant(0.0))


class _NoMetric:
    """A metric that counts nothing; the chunk still reads (0.0) and resets it once per call."""

    def __init__(self, name: str):
        self.name = name

    def update_state(self, *args, **kwargs):
        return None

    def result(self):
        return 0.0

    def reset_state(self):
        return None


def _without_metrics(trainer) -> None:
    """The step without its metric updates (loss and gradient-norm means, task metrics)."""
    trainer.task_train_metrics = []
    trainer.train_metrics = {name: _NoMetric(name) for name in trainer.train_metrics}


def matmul_peak(rows: int, width: int, dtype: str, chain: int = 20, repeats: int = 5) -> float:
    """GFLOP/s of this machine's (rows, width) x (width, width) matmul in `dtype`: `chain`
    dependent matmuls in one compiled call, the best of `repeats` calls after a warm-up."""
    import tensorflow as tf

    x = tf.cast(tf.random.normal([rows, width]), dtype)
    w = tf.cast(tf.random.normal([width, width], stddev=width**-0.5), dtype)

    @tf.function
    def run(x):
        for _ in tf.range(chain):
            x = tf.matmul(x, w)
        return x

    run(x).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * width * width * chain / best / 1e9


def step_flops(cfg, make_task=None) -> float:
    """FLOPs of one training step of `cfg` (one replica's step over the whole batch, on one
    device), as TensorFlow's profiler counts them in the traced step (matmuls and convolutions
    of the forward and backward passes; elementwise work is left out). `make_task` replaces the
    package's own (`matmuls_only`)."""
    import tensorflow as tf

    from .loop.cluster import make_cluster
    from .loop.trainer import Trainer
    from .tasks import base

    cfg.distribute.strategy, cfg.distribute.cpu_devices = "none", 0
    task = (make_task or base.make_task)(cfg)
    source = task.source(cfg.data)
    trainer = Trainer(cfg, make_cluster(cfg.distribute), task, source)
    batch = next(
        iter(source.train_batches(tf.distribute.get_strategy(), cfg.train.batch_size, 0, 0))
    )
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), batch)
    graph = tf.function(trainer._replica_train_step).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


PEAK_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def section_steps_per_execution(bench: Bench, rounds: int) -> dict:
    result = alternate(
        {
            f"spe{k}": lambda k=k: bench.wall(f"train.steps_per_execution={k}")
            for k in LOOP_STEPS_PER_EXECUTION
        },
        rounds,
    )
    result["fastest"] = max(result, key=lambda name: result[name]["median"])
    return result


def section_precision(bench: Bench, rounds: int, steps: int) -> dict:
    from .support import unsupported_reason
    from .tasks.base import make_task

    variants, unsupported, policies = {}, {}, []
    preset = precision_preset(bench)
    cfg = bench.config(steps=steps, first=preset)
    source, kernels = model_kernels(cfg)
    widths = chained_widths(source, kernels)
    alone = matmuls_only(make_task, widths) if widths else None
    if alone is None:
        unsupported["matmuls_only"] = "the model's 2-D kernels do not chain inputs to targets"

    def run(policy: str, replacements=None) -> float:
        cfg = bench.config(f"precision={policy}", steps=steps, first=preset)
        return bench.loop(cfg, replacements)["compute"]

    for policy in PRECISION_POLICIES:
        reason = unsupported_reason(bench.base.distribute.strategy, policy)
        if reason:
            unsupported[policy] = reason
            continue
        policies.append(policy)
        variants[policy] = lambda policy=policy: run(policy)
        if alone is not None:
            variants[f"{policy}_matmuls_only"] = lambda policy=policy: run(
                policy, {"make_task": alone}
            )
    result = alternate(variants, rounds)
    reference = result.get("float32", {}).get("median")
    result["ratio_to_float32"] = {
        policy: result[policy]["median"] / reference for policy in policies if reference
    }
    result["preset"] = list(preset)
    result["unsupported"] = unsupported
    rows, width = cfg.train.batch_size, max([n_out for _, n_out in kernels] or [1])
    flops = {"": step_flops(bench.config(steps=steps, first=preset))}
    if alone is not None:
        flops["_matmuls_only"] = step_flops(bench.config(steps=steps, first=preset), alone)
    result["step_gflop"] = flops[""] / 1e9
    result["step_gflop_matmuls_only"] = flops.get("_matmuls_only", 0.0) / 1e9
    result["matmul_shape"] = [rows, width, width]
    for key in ("peak_gflops", "achieved_gflops", "fraction_of_peak"):
        result[key] = {}
    for policy in policies:
        try:
            peak = matmul_peak(rows, width, PEAK_DTYPES[policy])
        except Exception as error:  # a dtype this CPU's kernels lack
            unsupported[f"{policy} peak"] = str(error).splitlines()[0][:120]
            continue
        result["peak_gflops"][policy] = peak
        for suffix, count in flops.items():
            achieved = result[policy + suffix]["median"] * count / 1e9
            result["achieved_gflops"][policy + suffix] = achieved
            result["fraction_of_peak"][policy + suffix] = achieved / peak
    return result


def precision_preset(bench: Bench, task: str | None = None) -> tuple[str, ...]:
    """`PRECISION_PRESET` as `task` (default: the selected one) takes it: its task keys the task
    has (`Bench.applicable`), its batch no larger than the task's training examples (a task of
    a few hundred trains on all of them each step). The command line's overrides still win."""
    from .tasks.base import make_task

    preset = bench.applicable(PRECISION_PRESET, task)
    cfg = bench.config(first=preset, task=task)
    examples = make_task(cfg).source(cfg.data).num_train_examples

    def capped(override: str) -> str:
        key, value = override.split("=", 1)
        return f"{key}={min(int(value), examples)}" if key == "train.batch_size" else override

    return tuple(map(capped, preset))


def model_kernels(cfg):
    """The task's data source and the (in, out) shape of each 2-D kernel of its model, in the
    order of its variables (the model built once on the example inputs)."""
    from .tasks.base import make_task

    task = make_task(cfg)
    source = task.source(cfg.data)
    model = task.build_model()
    model(source.example_inputs)
    kernels = [tuple(map(int, v.shape)) for v in model.trainable_variables if len(v.shape) == 2]
    return source, kernels


def chained_widths(source, kernels: list[tuple[int, int]]) -> list[int] | None:
    """The widths of the kernels that chain the inputs' features to the targets' (each taking
    the last one's output), in order; None when no chain gets there, or the data is not one
    array each way with one row of features per example. The wide preset: 8 -> 1024
    (projection) -> 1024 x 4 (blocks) -> 1 (output); the reconstruction head (1024 -> 8) is
    off the chain."""
    inputs, targets = source.example_inputs, source.example_targets
    if not (hasattr(inputs, "shape") and hasattr(targets, "shape")) or len(inputs.shape) != 2:
        return None
    widths, current = [], int(inputs.shape[-1])
    for n_in, n_out in kernels:
        if n_in == current:
            widths.append(n_out)
            current = n_out
    return widths if widths and current == int(targets.shape[-1]) else None


def matmuls_only(make_task, widths: list[int]):
    """`make_task`, with the task's model replaced by its matmuls alone: Dense layers without
    bias or activation of `widths` (its `chained_widths`). The same loop on the same data and
    batch; what the model adds around its matmuls (activations, noise, penalties, heads) is
    gone, so its steps/s is the loop's own limit on the preset's arithmetic."""
    *hidden, last = widths

    def build_model():
        import keras

        layers = [keras.layers.Dense(n, use_bias=False) for n in hidden]
        return keras.Sequential(
            [*layers, keras.layers.Dense(last, use_bias=False, dtype="float32")]
        )

    def make(cfg):
        task = make_task(cfg)
        task.build_model = build_model
        return task

    return make


def section_checkpoint(bench: Bench, rounds: int) -> dict:
    configured = bench.base.checkpoint.every_steps
    cadences = sorted({configured, max(1, configured // 5)}, reverse=True)
    variants = {"off": lambda: bench.wall(f"checkpoint.every_steps={CHECKPOINTS_OFF}")}
    for every in cadences:
        variants[f"every_{every}"] = lambda every=every: bench.wall(
            f"checkpoint.every_steps={every}"
        )
    result = alternate(variants, rounds)
    off = result["off"]["median"]
    result["cost_percent"] = {
        f"every_{every}": 100 * (1 - result[f"every_{every}"]["median"] / off) for every in cadences
    }
    return result


def section_input(bench: Bench, rounds: int) -> dict:
    result = alternate(
        {
            "pipeline": lambda: bench.steps_on(bench.config(), constant=False),
            "constant_batch": lambda: bench.steps_on(bench.config(), constant=True),
        },
        rounds,
    )
    result["ratio"] = result["pipeline"]["median"] / result["constant_batch"]["median"]
    return result


def section_files(bench: Bench, rounds: int) -> dict:
    """Shards against memory on the configured task (its data written once by `prepare`)."""
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as parent:
        shards = os.path.join(parent, "shards")
        _prepare(bench.config(), shards)
        files = f"data.files={shards}"
        result = alternate(
            {
                "memory": lambda: bench.wall(),
                "files": lambda: bench.wall(files),
                "files_compiled_steps": lambda: bench.steps_on(bench.config(files), False),
                "files_constant_batch": lambda: bench.steps_on(bench.config(files), True),
            },
            rounds,
        )
        result["ratio_files_to_memory"] = result["files"]["median"] / result["memory"]["median"]
        result["ratio_pipeline_to_constant"] = (
            result["files_compiled_steps"]["median"] / result["files_constant_batch"]["median"]
        )
        result["resume_seconds"] = _resume_seconds(bench.config(files))
    return result


def _prepare(cfg, directory: str) -> None:
    from .shards import write_shards
    from .tasks.base import make_task

    task = make_task(cfg)
    write_shards(task.arrays(cfg.data.path), directory, cfg.data.shards, "bench", cfg.seed)


def _resume_seconds(cfg) -> dict:
    """Seconds to the first batch of a run resumed at an epoch's start and near its end."""
    import tensorflow as tf

    from .tasks.base import make_task

    source = make_task(cfg).source(cfg.data)
    strategy = tf.distribute.get_strategy()
    epoch_steps = source.num_train_examples // cfg.train.batch_size
    seconds = {}
    for name, step in (("epoch_start", epoch_steps * 2), ("epoch_end", epoch_steps * 3 - 1)):
        start = time.perf_counter()
        next(iter(source.train_batches(strategy, cfg.train.batch_size, cfg.seed, step)))
        seconds[name] = time.perf_counter() - start
    seconds["train_examples"] = source.num_train_examples
    return seconds


MEMORY_PRESET = ("task=regression", "task.input_dim=256", "task.test_size=2048")


# Runs a command and prints its peak RSS in KiB. A process forked from this one would count this
# process's pages as its own until it execs; forked from this small one, the child's are its own.
PEAK_RSS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = child.stderr.read()
_, status, usage = os.wait4(child.pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.stderr.write(err.decode(errors="replace")[-400:] if code else "")
print(usage.ru_maxrss)
sys.exit(code)
"""


def section_memory(bench: Bench, examples: int) -> dict:
    """Peak RSS (MiB) of training processes at `examples` and 10x training examples."""
    import subprocess

    result = {"preset": [*MEMORY_PRESET, f"task.train_size={examples} and x10"]}
    module = [sys.executable, "-m"]
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as parent:
        for scale in (1, 10):
            size = [*bench.overrides, *MEMORY_PRESET, f"task.train_size={examples * scale}"]
            shards = os.path.join(parent, f"x{scale}")
            prepare = [*module, f"{__package__}.prepare", *size, f"data.files={shards}"]
            subprocess.run(prepare, check=True, capture_output=True)
            for source in ("memory", "files"):
                run_dir = os.path.join(parent, f"run-{source}-{scale}")
                # 200 steps (fewer if --steps asks): the peak is reached in the first ones
                steps = f"train.steps={min(bench.steps, 200)}"
                command = [*module, f"{__package__}.train", *size, steps]
                command += [f"run_dir={run_dir}"]
                command += [f"data.files={shards}"] if source == "files" else []
                measured = subprocess.run(
                    [sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True
                )
                if measured.returncode:
                    raise RuntimeError(f"{' '.join(command)}: {measured.stderr.strip()}")
                result[f"{source}_x{scale}_mib"] = int(measured.stdout.split()[-1]) / 1024
        for source in ("memory", "files"):
            grown = result[f"{source}_x10_mib"] - result[f"{source}_x1_mib"]
            result[f"{source}_growth_mib"] = grown
    return result


# XLA's loop runs on one device: under a MirroredStrategy over logical CPU devices (the tests'
# setup) the XLA-compiled step cannot reach the second device's variables.
ONE_DEVICE = ("distribute=none", "distribute.cpu_devices=0")


def section_xla(bench: Bench, rounds: int) -> dict:
    spe = FIT_STEPS_PER_EXECUTION[-1]
    result = alternate(
        {
            "loop": lambda: bench.wall(*ONE_DEVICE, "train.jit_compile=false"),
            "loop_xla": lambda: bench.wall(*ONE_DEVICE, "train.jit_compile=true"),
            f"fit_spe{spe}": lambda: bench.fit(bench.config(), spe, jit_compile=False),
            f"fit_spe{spe}_xla": lambda: bench.fit(bench.config(), spe, jit_compile=True),
        },
        rounds,
    )
    result["ratio_loop"] = result["loop_xla"]["median"] / result["loop"]["median"]
    result["ratio_fit"] = result[f"fit_spe{spe}_xla"]["median"] / result[f"fit_spe{spe}"]["median"]
    return result


# -- output --------------------------------------------------------------------------------------
TITLES = {
    "fit": "the training command (logs, evaluation, checkpoints on) against model.fit",
    "breakdown": "where a step's time goes (compiled steps on one constant batch; one run)",
    "steps_per_execution": "the training command per train.steps_per_execution",
    "precision": "the loop per precision policy, on {preset}",
    "checkpoint": "the training command with checkpoints against checkpoints off",
    "input": "the loop's compiled steps on the real pipeline against one constant batch",
    "files": "the training command on shards (data.files) against the same data in memory",
    "memory": "peak RSS (MiB) of a training process, {preset}",
    "xla": "without and with XLA (jit_compile)",
}


def _footer(name: str, section: dict) -> list[str]:
    if name == "fit":
        threads = section.get("threads") or {}
        return [
            f"ratio loop / best fit, each in a process of its own (loop_alone, its pools picked "
            f"by the model; {section['best_fit']}, TensorFlow's default threads): "
            f"{section['ratio']:.2f}",
            f"ratio loop / best fit in one process, with the loop's threads (loop, "
            f"{section['best_fit_same_threads']}, intra_op={threads.get('intra_op', '?')}): "
            f"{section['ratio_same_threads']:.2f}",
            f"logs, evaluation and checkpoints cost the loop {section['overhead_percent']:.1f}% "
            "(loop against loop_compute_only)",
        ]
    if name == "breakdown":
        step = ", ".join(f"{k} {100 * v:.1f}%" for k, v in section["in_step"].items())
        loop = ", ".join(f"{k} {100 * v:.1f}%" for k, v in section["in_loop"].items())
        return [
            f"in the compiled step ({section['step_ms']:.2f} ms): {step}",
            f"in the training command: {loop}",
        ]
    if name == "steps_per_execution":
        return [f"fastest: {section['fastest']}"]
    if name == "precision":
        ratios = ", ".join(f"{k} {v:.2f}" for k, v in section["ratio_to_float32"].items())
        refused = [f"not run: {k} ({v})" for k, v in section["unsupported"].items()]
        m, k, n = section["matmul_shape"]
        roofline = []
        for policy, peak in section["peak_gflops"].items():
            line = (
                f"{policy}: {section['achieved_gflops'][policy]:.0f} GFLOP/s of a {peak:.0f} "
                f"GFLOP/s matmul peak ({100 * section['fraction_of_peak'][policy]:.0f}%)"
            )
            alone = section["fraction_of_peak"].get(f"{policy}_matmuls_only")
            roofline.append(line + (f"; matmuls only {100 * alone:.0f}%" if alone else ""))
        return [
            f"ratio to float32: {ratios}",
            f"{section['step_gflop']:.2f} GFLOP per step ({section['step_gflop_matmuls_only']:.2f} "
            f"with matmuls only); peak: ({m}x{k}) x ({k}x{n}) matmuls",
            *roofline,
            *refused,
        ]
    if name == "checkpoint":
        costs = ", ".join(f"{k} {v:.1f}%" for k, v in section["cost_percent"].items())
        return [f"cost against off (steps/s lost): {costs}"]
    if name == "input":
        return [f"ratio pipeline / constant batch: {section['ratio']:.2f}"]
    if name == "files":
        resume = section["resume_seconds"]
        return [
            f"ratio files / memory: {section['ratio_files_to_memory']:.2f}; files pipeline / "
            f"constant batch: {section['ratio_pipeline_to_constant']:.2f}",
            f"resume: {resume['epoch_start']:.2f} s to the first batch at an epoch's start, "
            f"{resume['epoch_end']:.2f} s at its end ({resume['train_examples']} examples)",
        ]
    if name == "memory":
        return [
            f"{source}: {section[f'{source}_x1_mib']:.0f} MiB, x10 data "
            f"{section[f'{source}_x10_mib']:.0f} MiB ({section[f'{source}_growth_mib']:+.0f})"
            for source in ("memory", "files")
        ]
    return [
        f"ratio with / without XLA: loop {section['ratio_loop']:.2f}, "
        f"fit {section['ratio_fit']:.2f}"
    ]


def table(report: dict) -> str:
    """The report as text: one block per section, steps/s median / min / max."""
    cpu, settings = report["cpu"], report["settings"]
    bf16 = {True: "yes", False: "no", None: "unknown"}[cpu["avx512_bf16"]]
    lines = [
        f"CPU: {cpu['model']} ({cpu['cores']} cores, AVX512-BF16: {bf16}); "
        f"TensorFlow {report['versions']['tensorflow']}, Keras {report['versions']['keras']}; "
        f"{settings['rounds']} round(s) of {settings['steps']} steps"
    ]
    blocks = []
    for name in SECTIONS:
        if name == "fit" and name in report:
            blocks += [(name, f"fit: task={task}", fit) for task, fit in report[name].items()]
        elif name in report:
            blocks.append((name, name, report[name]))
    for name, heading, section in blocks:
        title = TITLES[name].format(preset=" ".join(section.get("preset", [])))
        lines += ["", f"[{heading}] {title}"]
        if any(isinstance(rate, dict) and "median" in rate for rate in section.values()):
            lines.append(f"  {'steps/s':30s} {'median':>8s} {'min':>8s} {'max':>8s}")
        lines += [
            f"  {key:30s} {rate['median']:8.1f} {rate['min']:8.1f} {rate['max']:8.1f}"
            for key, rate in section.items()
            if isinstance(rate, dict) and "median" in rate
        ]
        lines += [f"  {line}" for line in _footer(name, section)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.bench",
        description="Steps/s of the training command against model.fit, per precision, with "
        "and without checkpoints, the input pipeline and XLA.",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides applied to every run (e.g. train.batch_size=128)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per section (default 3)")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per run (default: train.steps of the config)"
    )
    parser.add_argument(
        "--precision-steps",
        type=int,
        default=120,
        help="steps per run of the wide precision preset (default 120)",
    )
    parser.add_argument(
        "--tasks",
        default=None,
        help="comma-separated tasks the fit section runs on (default: every shipped task); "
        "the other sections run on the configured task",
    )
    parser.add_argument(
        "--memory-examples",
        type=int,
        default=50_000,
        help="training examples of the memory section's smaller data set (default 50000)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report here")
    # One fit run in this process (TensorFlow's default threads); prints its steps/s as JSON.
    parser.add_argument("--fit-alone", type=int, metavar="SPE", help=argparse.SUPPRESS)
    # One run of the training command in this process (its own thread pools); prints its rates.
    parser.add_argument("--loop-alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for flag in ("rounds", "steps", "precision_steps", "memory_examples"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')}={value}: must be a positive integer")
    return args


def run_sections(bench: Bench, args: argparse.Namespace) -> dict:
    """The report: what it ran on, then each section asked for, in order; each section (each
    task of `fit`) in a process of its own unless only one is asked for."""
    import keras
    import tensorflow as tf

    report = {
        "cpu": cpu_info(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "settings": {
            "rounds": args.rounds,
            "steps": bench.steps,
            "precision_steps": args.precision_steps,
            "overrides": bench.overrides,
        },
    }
    tasks = bench.tasks(args.tasks) if "fit" in args.sections else []
    units = [
        (name, task) for name in args.sections for task in (tasks if name == "fit" else [None])
    ]
    for name, task in units:
        if len(units) == 1:
            section = run_here(bench, args, name, task)
        else:
            section = run_apart(bench, args, name, task)
        if task:
            report.setdefault(name, {})[task] = section
        else:
            report[name] = section
    return report


def run_here(bench: Bench, args: argparse.Namespace, name: str, task: str | None) -> dict:
    """One section (on one task, for `fit`) in this process, its thread pools first."""
    runners = {
        "fit": lambda: _fit_on(bench, args.rounds, task),
        "breakdown": lambda: section_breakdown(bench, args.rounds),
        "steps_per_execution": lambda: section_steps_per_execution(bench, args.rounds),
        "precision": lambda: section_precision(bench, args.rounds, args.precision_steps),
        "checkpoint": lambda: section_checkpoint(bench, args.rounds),
        "input": lambda: section_input(bench, args.rounds),
        "files": lambda: section_files(bench, args.rounds),
        "memory": lambda: section_memory(bench, args.memory_examples),
        "xla": lambda: section_xla(bench, args.rounds),
    }
    print(f"running {name}{f' on task={task}' if task else ''}...", file=sys.stderr, flush=True)
    threads = _threads(bench, name, task)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="keras")  # fit's notes about its data adapter
        section = runners[name]()
    return {**section, "threads": threads}


def _threads(bench: Bench, name: str, task: str | None) -> dict | None:
    """Sets this process's thread pools as the training command would for the section's model
    (None: TensorFlow already runs here, or `memory`, whose training processes pick their own)."""
    from .loop.threads import configure_threads
    from .tasks.base import make_task

    if name == "memory":
        return None
    preset = precision_preset(bench, task) if name == "precision" else ()
    cfg = bench.config(task=task, first=preset)
    chosen = make_task(cfg)
    return configure_threads(cfg, chosen, chosen.source(cfg.data))


def run_apart(bench: Bench, args: argparse.Namespace, name: str, task: str | None) -> dict:
    """One section (on one task, for `fit`) in a new process of this command; its report."""
    import subprocess

    from .errors import RunError

    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        path = os.path.join(directory, "report.json")
        command = [sys.executable, "-m", f"{__package__}.bench", "--sections", name]
        command += ["--rounds", str(args.rounds), "--precision-steps", str(args.precision_steps)]
        command += ["--memory-examples", str(args.memory_examples), "--json", path]
        command += ["--steps", str(bench.steps), *(["--tasks", task] if task else [])]
        done = subprocess.run([*command, *bench.overrides], stdout=subprocess.DEVNULL)
        if done.returncode:
            raise RunError(f"bench section {name} failed (exit {done.returncode}), see above")
        with open(path, encoding="utf-8") as file:
            section = json.load(file)[name]
    return section[task] if task else section


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .config import ConfigError
    from .errors import EXIT_USAGE, RunError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        bench = Bench(args.overrides, args.steps)
        if args.fit_alone:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="keras")
                print(json.dumps(bench.fit(bench.config(), args.fit_alone)))
            return 0
        if args.loop_alone:
            print(json.dumps(bench.loop(bench.config())))
            return 0
        report = run_sections(bench, args)
    except (ConfigError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
