"""Benchmark: the loop's steps/s against Keras' `model.fit` running the same training step.

    python -m {{ cookiecutter.package_name }}.bench                      # every shipped task
    python -m {{ cookiecutter.package_name }}.bench --tasks regression,gan --rounds 5 --steps 3000
    python -m {{ cookiecutter.package_name }}.bench train.batch_size=256  # overrides apply to every task
    python -m {{ cookiecutter.package_name }}.bench --precision --tasks regression \\
        task.hidden_units=1024 train.batch_size=1024                      # the precision matrix

Per task, two runners of one step on the same models, built once in this process and timed in
alternating rounds (a fresh iterator each, its first call untimed), on one device (Keras 3's fit
under MirroredStrategy failed: keras-team/keras#19246), with the thread pools the training
command picks for the largest of the steps (`loop/threads.py`):

* `loop`: the loop's compiled steps (`Trainer.train_steps`), without the training command's logs,
  evaluations and checkpoints;
* `fit`: `keras.Model.fit` on `FitStep`, whose `train_step` override calls the task's
  `train_step(batch, loop)` (the reference step, or the task's own: the GAN's) with `KerasLoop`,
  the loop's helpers as a Keras user writes them (`tape.gradient`, `scale_loss`, `apply`), Keras'
  own optimizer classes with the loop's settings, and a `Mean` of each value the step returns.
  `tests/test_bench.py` proves that both train the same.

Printed per task: the median steps/s of each (min-max over the rounds) and loop / fit, the median
of the rounds' ratios (the two run side by side, through the same load).

`--precision` times the loop alone per policy, and the arithmetic it achieves (the step's FLOPs
as `loop/threads.py` estimates them, times steps/s) against this machine's peak: a chain of
(batch x width) x (width x width) matmuls in the policy's dtype, `width` the widest kernel's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import timeit
from pathlib import Path

POLICIES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.bench",
        description="Steps/s of the loop against keras.Model.fit with the same step, per task; "
        "or (--precision) of the loop per precision policy against the matmul peak.",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--tasks", help="comma-separated tasks (default: every shipped task)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per task (default 3)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps a round (2000)")
    parser.add_argument("--precision", action="store_true", help="the precision matrix instead")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    for flag in ("rounds", "steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}={getattr(args, flag)}: must be a positive integer")
    return args


def task_configs(names: str | None, overrides: list[str], extra=()) -> dict:
    """Each chosen task's config on one device: the overrides it has keys for (a `task.<key>`
    it lacks is left out for it), then `extra`."""
    import dataclasses

    from .config import ConfigError, load_config
    from .tasks.base import shipped_tasks

    shipped = shipped_tasks()
    chosen = [name.strip() for name in (names or ",".join(shipped)).split(",") if name.strip()]
    if not chosen or set(chosen) - set(shipped):
        raise ConfigError(f"--tasks={names}: choose from {', '.join(shipped)}")
    for override in overrides:
        if override.split("=")[0].lstrip("+~") == "task":
            raise ConfigError(f"{override}: choose tasks with --tasks, not task=")
    configs, used = {}, set()
    for name in chosen:
        keys = {field.name for field in dataclasses.fields(load_config([f"task={name}"]).task)}
        own = [o for o in overrides if o[:5] != "task." or o.split("=")[0].split(".")[1] in keys]
        used.update(own)
        configs[name] = load_config(
            [f"task={name}", *own, *extra, "distribute=none", "run_dir=unused"]
        )
        if configs[name].train.accumulate_steps > 1:
            raise ConfigError(
                f"train.accumulate_steps={configs[name].train.accumulate_steps}: fit has no "
                "gradient accumulation; bench compares one update a step (leave it at 1)"
            )
    unused = [override for override in overrides if override not in used]
    if unused:
        raise ConfigError(f"{unused[0]}: none of the tasks {', '.join(chosen)} has this key")
    return configs


def set_threads(configs: dict) -> dict | None:
    """The thread pools the training command picks for the largest of the tasks' steps (before
    TensorFlow starts: one choice a process; None where it already runs)."""
    from .loop.threads import configure_threads, step_flops_estimate
    from .tasks.base import make_task

    def sized(cfg):
        task = make_task(cfg)
        source = task.source(cfg.data)
        return step_flops_estimate(task, source, cfg.train.batch_size) or 0.0, cfg, task, source

    *_, cfg, task, source = max(map(sized, configs.values()), key=lambda found: found[0])
    return configure_threads(cfg, task, source)


class KerasLoop:
    """What the loop gives a step (`loop/step.py`), as a Keras `train_step` override writes it on
    one device: gradients from the tape (the loss scaled by `scale_loss` under mixed_float16),
    `optimizer.apply` (which unscales, and clips by `global_clipnorm`)."""

    def __init__(self, trainer, optimizers: dict, metrics: list, norms: dict):
        from .loop.step import StepContext

        self.models, self.variables = trainer.models, trainer.optimizer_variables
        self.optimizers, self.metrics, self.norms = optimizers, metrics, norms
        self.num_replicas, self.global_batch_size = 1, trainer.global_batch_size
        self.loss_scaled, self.loss = trainer.loss_scaled, trainer.loss_fn
        self.model_losses = StepContext.model_losses
        self.scale_regularization_loss = StepContext.scale_regularization_loss

    def compute_average_loss(self, per_example):
        import tensorflow as tf

        per_example = tf.cast(per_example, tf.float32)
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    def apply_gradients(self, tape, loss, optimizer=None):
        import tensorflow as tf

        names = [optimizer] if isinstance(optimizer, str) else list(optimizer or self.optimizers)
        optimizers = [self.optimizers[name] for name in names]
        scales = [o.scale_loss(1.0) if self.loss_scaled else 1.0 for o in optimizers]
        loss = tf.cast(loss, tf.float32)  # outside the tape: scaled where the gradient starts
        seed = scales[0] * tf.ones_like(loss) if self.loss_scaled else None
        variables = [v for name in names for v in self.variables[name]]
        gradients = tape.gradient(loss, variables, output_gradients=seed)
        norm = tf.linalg.global_norm(gradients) / scales[0]
        one = optimizer is None or len(self.optimizers) == 1
        self.norms["grad_norm" if one else f"{'_'.join(names)}_grad_norm"].update_state(norm)
        for name, opt, scale in zip(names, optimizers, scales):
            count = len(self.variables[name])
            share, gradients = gradients[:count], gradients[count:]
            if scale is not scales[0]:  # each optimizer unscales by its own loss scale
                share = [g * (scale / scales[0]) for g in share]
            opt.apply(share, self.variables[name])
        return norm


def fit_step_model(trainer):
    """`FitStep` on the trainer's own models, compiled: each optimizer of Keras' own class (the
    loop's Adam is fused: `loop/optimizers.py`) with its settings and `train.clip_norm`."""
    import keras
    import tensorflow as tf

    from .loop.optimizers import KERAS_OPTIMIZER_CLASSES
    from .loop.outputs import task_metrics

    class FitStep(keras.Model):
        def __init__(self, task, loop, names):
            super().__init__()
            self.task, self.loop, self.built = task, loop, True
            self.means = [keras.metrics.Mean(name=name) for name in names]

        @property
        def metrics(self):
            return [*self.means, *self.loop.norms.values(), *self.loop.metrics]

        def train_step(self, data):
            outputs = self.task.train_step(data, self.loop)
            for mean in self.means:
                mean.update_state(tf.cast(outputs[mean.name], tf.float32))
            return {metric.name: metric.result() for metric in self.metrics}

    optimizers = {}
    for name, optimizer in trainer.optimizers.items():
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        cls = next(c for c in type(inner).__mro__ if c in KERAS_OPTIMIZER_CLASSES.values())
        clip = trainer.cfg.train.clip_norm or None
        optimizers[name] = cls.from_config({**inner.get_config(), "global_clipnorm": clip})
        if trainer.loss_scaled:
            optimizers[name] = keras.optimizers.LossScaleOptimizer(optimizers[name])
        optimizers[name].build(trainer.optimizer_variables[name])
    norms = {name: keras.metrics.Mean(name=name) for name in trainer.grad_norms}
    loop = KerasLoop(trainer, optimizers, task_metrics(trainer.task, trainer.loss_fn), norms)
    model = FitStep(trainer.task, loop, list(trainer.train_outputs))
    spe, jit = trainer.cfg.train.steps_per_execution, trainer.cfg.train.jit_compile
    model.compile(next(iter(optimizers.values())), steps_per_execution=spe, jit_compile=jit)
    return model


class Runners:
    """A task's loop and its `fit` twin on the same models. `loop(steps)` and `fit(steps)` each
    run a fresh iterator, one call untimed and `steps` timed; each returns (steps/s, its logs)."""

    def __init__(self, cfg, fit: bool = True):
        from .loop.cluster import make_cluster
        from .loop.trainer import Trainer
        from .tasks.base import make_task

        task = make_task(cfg)
        self.cfg, self.chunk = cfg, cfg.train.steps_per_execution
        self.source = task.source(cfg.data)
        self.trainer = Trainer(cfg, make_cluster(cfg.distribute), task, self.source)
        self.fit_model = fit_step_model(self.trainer) if fit else None

    def batches(self):
        cfg = self.cfg
        return self.source.train_batches(self.trainer.strategy, cfg.train.batch_size, cfg.seed, 0)

    def rate(self, ends: list[float]) -> float:
        """Steps/s from the end of the first call (a fresh iterator's) to the end of the last."""
        return (len(ends) - 1) * self.chunk / (ends[-1] - ends[0])

    def loop(self, steps: int) -> tuple[float, dict]:
        import tensorflow as tf

        iterator, chunk, ends = iter(self.batches()), tf.constant(self.chunk, tf.int32), []
        self.trainer.collect_train_logs()  # means of this round only
        for _ in range(1 + -(-steps // self.chunk)):
            int(self.trainer.train_steps(iterator, chunk))
            ends.append(time.perf_counter())
        return self.rate(ends), self.trainer.collect_train_logs()

    def fit(self, steps: int) -> tuple[float, dict]:
        model, ends = self.fit_model, []
        model.make_train_function()
        compiled = model.train_function

        def timed(iterator):  # each compiled call of fit, its end taken as it returns
            logs = compiled(iterator)
            ends.append(time.perf_counter())
            return logs

        model.train_function, total = timed, (1 + -(-steps // self.chunk)) * self.chunk
        try:
            history = model.fit(self.batches(), steps_per_epoch=total, shuffle=False, verbose=0)
        finally:
            model.train_function = compiled
        return self.rate(ends), {name: values[-1] for name, values in history.history.items()}


def alternate(runs: dict, rounds: int, steps: int) -> dict:
    """Each of `runs` (callables of steps, giving steps/s first) once a round, in a rotating
    order; the median, min and max of each one's steps/s, and the steps/s of each round."""
    names, rates = list(runs), {name: [] for name in runs}
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            rates[name].append(runs[name](steps)[0])
    return {
        name: {"median": statistics.median(rate), "min": min(rate), "max": max(rate), "runs": rate}
        for name, rate in rates.items()
    }


def bench_fit(cfg, args) -> dict:
    runners = Runners(cfg)
    runners.loop(runners.chunk), runners.fit(runners.chunk)  # traced, not timed
    figures = alternate({"loop": runners.loop, "fit": runners.fit}, args.rounds, args.steps)
    # Per round (the two ran side by side, through the same load), then the median of those.
    ratios = [a / b for a, b in zip(figures["loop"]["runs"], figures["fit"]["runs"])]
    return {**figures, "ratio": statistics.median(ratios)}


def matmul_peak(rows: int, width: int, dtype: str, chain: int = 20, repeats: int = 5) -> float:
    """GFLOP/s of `chain` dependent (rows x width) x (width x width) matmuls in `dtype` in one
    compiled call: the fastest of `repeats` calls after the first (traced)."""
    import tensorflow as tf

    x = tf.cast(tf.random.normal([rows, width]), dtype)
    w = tf.cast(tf.random.normal([width, width], stddev=width**-0.5), dtype)
    run = tf.function(lambda x: tf.foldl(lambda y, _: y @ w, tf.range(chain), x))
    run(x).numpy()
    seconds = min(timeit.repeat(lambda: run(x).numpy(), number=1, repeat=repeats))
    return 2 * rows * width * width * chain / seconds / 1e9


def bench_precision(configs: dict, args) -> dict:
    """The loop under each policy of `configs` (policy: config of one task)."""
    import keras

    from .loop.threads import step_flops_estimate

    runs = {}
    for policy, cfg in configs.items():  # each Trainer sets its policy, which its models keep
        runners = Runners(cfg, fit=False)
        runners.loop(runners.chunk)  # traced, not timed
        runs[policy] = runners.loop
    keras.mixed_precision.set_global_policy("float32")
    figures = alternate(runs, args.rounds, args.steps)
    trainer, batch = runners.trainer, cfg.train.batch_size
    flops = step_flops_estimate(trainer.task, runners.source, batch) or float("nan")
    shapes = [v.shape for model in trainer.models.values() for v in model.trainable_variables]
    width = max([int(shape[-1]) for shape in shapes if len(shape) == 2], default=0)
    for policy, dtype in POLICIES.items():
        achieved = figures[policy]["median"] * flops / 1e9
        peak = matmul_peak(batch, width, dtype) if width else float("nan")
        figures[policy].update(
            ratio_to_float32=figures[policy]["median"] / figures["float32"]["median"],
            achieved_gflops=achieved,
            peak_gflops=peak,
            fraction_of_peak=achieved / peak,
        )
    return {**figures, "step_gflop": flops / 1e9, "matmul": [batch, width, width]}


def machine() -> dict:
    """The CPU (its model in /proc/cpuinfo, on Linux), TensorFlow and Keras."""
    import keras
    import tensorflow as tf

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    return {
        "cpu": model.group(1) if model else platform.machine(),
        "cores": os.cpu_count(),
        "avx512_bf16": bool(re.search(r"\bavx512_bf16\b", text)),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def table(report: dict) -> str:
    """The figures as text: per task, the median steps/s (min-max over the rounds)."""
    m, s = report["machine"], report["settings"]
    lines = [
        f"CPU: {m['cpu']} ({m['cores']} cores, AVX512-BF16: {m['avx512_bf16']}); TensorFlow "
        f"{m['tensorflow']}, Keras {m['keras']}; threads: {report['threads']}",
        f"{s['rounds']} round(s) of {s['steps']} steps, one device; overrides: {s['overrides']}",
    ]
    if "fit" in report:
        lines.append("steps/s: loop (Trainer.train_steps), fit (keras.Model.fit, the task's step")
        lines.append(
            f"as its train_step override)\n{'task':22s}{'loop':>25s}{'fit':>25s}  loop/fit"
        )
    for task, f in report.get("fit", {}).items():
        lines.append(f"{task:22s}{_rate(f['loop']):>25s}{_rate(f['fit']):>25s}  {f['ratio']:.2f}")
    for task, f in report.get("precision", {}).items():
        lines.append(
            f"task={task}: loop steps/s, {f['step_gflop']:.3f} GFLOP a step; the peak of "
            f"{'x'.join(map(str, f['matmul']))} matmuls"
        )
        for policy, p in ((policy, f[policy]) for policy in POLICIES):
            lines.append(
                f"  {policy:15s}{_rate(p):>25s}  x{p['ratio_to_float32']:.2f} float32, "
                f"{p['achieved_gflops']:.1f} of a {p['peak_gflops']:.1f} GFLOP/s peak"
            )
    return "\n".join(lines)


def _rate(figure: dict) -> str:
    return f"{figure['median']:.1f} ({figure['min']:.0f}-{figure['max']:.0f})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .errors import EXIT_USAGE, ConfigError, RunError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        configs = task_configs(args.tasks, args.overrides)  # a bad value fails before TensorFlow
        report = {"threads": set_threads(configs), "machine": machine()}
        report["settings"] = {key: vars(args)[key] for key in ("rounds", "steps", "overrides")}
        if args.precision:  # each task's config under each policy
            policies = {
                p: task_configs(args.tasks, args.overrides, [f"precision={p}"]) for p in POLICIES
            }
        for name, cfg in configs.items():
            print(f"bench: task={name}...", file=sys.stderr, flush=True)
            if args.precision:
                each = {policy: policies[policy][name] for policy in POLICIES}
                report.setdefault("precision", {})[name] = bench_precision(each, args)
            else:
                report.setdefault("fit", {})[name] = bench_fit(cfg, args)
    except (ConfigError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
