"""Benchmark: the loop's steps/s against Keras' `model.fit` running the same training step.

    python -m {{ cookiecutter.package_name }}.bench                      # every shipped task
    python -m {{ cookiecutter.package_name }}.bench --tasks regression,gan --rounds 5 --steps 3000
    python -m {{ cookiecutter.package_name }}.bench train.batch_size=256  # overrides apply to every task
    python -m {{ cookiecutter.package_name }}.bench --precision --tasks regression \\
        task.hidden_units=1024 train.batch_size=1024                      # the precision matrix

For each task, two runners of one step on the same models, built once in this process:

* `loop`: the loop's compiled steps (`Trainer.train_steps`, `train.steps_per_execution` steps a
  call), the training command's inner loop without its logs, evaluations and checkpoints;
* `fit`: `keras.Model.fit` on `FitStep`, a `keras.Model` whose `train_step` override calls the
  task's `train_step(batch, loop)` (the reference step, or the task's own: the GAN's) with
  `KerasLoop`, the loop's helpers as a Keras user writes them (`tape.gradient`,
  `optimizer.scale_loss`, `optimizer.apply`), Keras' own optimizer classes with the loop's
  settings, and a `keras.metrics.Mean` of each value the step returns; the same steps a call.

Both run on one device (Keras 3's fit under a MirroredStrategy failed: keras-team/keras#19246),
on the same tf.data pipeline, with the thread pools the training command picks for the largest
of the tasks' steps (`loop/threads.py`); `tests/test_bench.py` proves the two train the same.
Rounds alternate the two (their order rotating); each round starts a fresh iterator, whose first
call is not timed, then times `--steps`. Printed per task: the median steps/s of each, their
range over the rounds, and loop / fit. `--json PATH` also writes the figures.

`--precision` instead times the loop under float32, mixed_bfloat16 and mixed_float16 (in
alternating rounds) and compares the arithmetic it achieves (the step's FLOPs as the thread
choice estimates them, times steps/s) with this machine's peak: a chain of `(batch x width) x
(width x width)` matmuls in the policy's dtype, `width` the model's widest kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

POLICIES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.bench",
        description="Steps/s of the loop against keras.Model.fit with the same step, per task; "
        "or (--precision) the loop per precision policy against the matmul peak.",
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
    """The config of each chosen task: the overrides it has keys for (a `task.<key>` another
    task lacks is left out), then `extra`, on one device."""
    import dataclasses

    from .config import ConfigError, load_config
    from .tasks.base import shipped_tasks, task_class

    shipped = shipped_tasks()
    chosen = [name.strip() for name in (names or ",".join(shipped)).split(",") if name.strip()]
    if not chosen or set(chosen) - set(shipped):
        raise ConfigError(f"--tasks={names}: choose from {', '.join(shipped)}")
    for override in overrides:
        if override.split("=")[0].lstrip("+~") == "task":
            raise ConfigError(f"{override}: choose tasks with --tasks, not task=")
    configs, used = {}, set()
    for name in chosen:
        keys = load_config([f"task={name}"]).task
        fields = {
            field.name for field in dataclasses.fields(task_class(keys._target_).config_class)
        }
        own = [
            o
            for o in overrides
            if not o.startswith("task.") or o[5:].split("=")[0].split(".")[0] in fields
        ]
        used.update(own)
        cfg = load_config([f"task={name}", *own, *extra, "distribute=none", "run_dir=unused"])
        if cfg.train.accumulate_steps > 1:
            raise ConfigError(
                f"train.accumulate_steps={cfg.train.accumulate_steps}: fit has no gradient "
                "accumulation; bench compares one update a step (leave it at 1)"
            )
        configs[name] = cfg
    unused = [override for override in overrides if override not in used]
    if unused:
        raise ConfigError(f"{unused[0]}: none of the tasks {', '.join(chosen)} has this key")
    return configs


def set_threads(configs: dict) -> dict | None:
    """This process's thread pools, as the training command picks them for the largest step of
    the tasks (one choice a process, before TensorFlow starts; None where it already runs)."""
    from .loop.threads import configure_threads, step_flops_estimate
    from .tasks.base import make_task

    def size(cfg):
        task = make_task(cfg)
        return step_flops_estimate(task, task.source(cfg.data), cfg.train.batch_size) or 0.0

    largest = max(configs.values(), key=size)
    task = make_task(largest)
    return configure_threads(largest, task, task.source(largest.data))


# -- the two runners ------------------------------------------------------------------------------
class KerasLoop:
    """What the loop gives a step (`loop/step.py`), written as a Keras `train_step` override
    writes it on one device: a global-batch mean, gradients from the tape (of the loss scaled by
    `optimizer.scale_loss` under mixed_float16), clipping by `global_clipnorm`, `apply`."""

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
        key = "grad_norm" if optimizer is None or len(self.optimizers) == 1 else None
        optimizers = [self.optimizers[name] for name in names]
        scales = [o.scale_loss(1.0) if self.loss_scaled else 1.0 for o in optimizers]
        variables = [v for name in names for v in self.variables[name]]
        loss = tf.cast(loss, tf.float32)  # the loss is outside the tape: scale where it starts
        seed = scales[0] * tf.ones_like(loss) if self.loss_scaled else None
        gradients = tape.gradient(loss, variables, output_gradients=seed)
        norm = tf.linalg.global_norm(gradients) / scales[0]
        self.norms[key or f"{'_'.join(names)}_grad_norm"].update_state(norm)
        start = 0
        for name, opt, scale in zip(names, optimizers, scales):
            share = gradients[start : start + len(self.variables[name])]
            start += len(share)
            if scale is not scales[0]:  # each optimizer unscales by its own loss scale
                share = [g * (scale / scales[0]) for g in share]
            opt.apply(share, self.variables[name])
        return norm


def fit_step_model(trainer):
    """`FitStep` on the trainer's own models: each optimizer's Keras class (the loop's Adam is
    fused, `loop/optimizers.py`), its settings, `global_clipnorm=train.clip_norm`."""
    import keras
    import tensorflow as tf

    from .loop.optimizers import KERAS_OPTIMIZER_CLASSES
    from .loop.outputs import task_metrics

    class FitStep(keras.Model):
        """`fit` running the task's `train_step` through its `train_step` override."""

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
        made = cls.from_config({**inner.get_config(), "global_clipnorm": clip})
        if trainer.loss_scaled:
            made = keras.optimizers.LossScaleOptimizer(made)
        made.build(trainer.optimizer_variables[name])
        optimizers[name] = made
    norms = {name: keras.metrics.Mean(name=name) for name in trainer.grad_norms}
    loop = KerasLoop(trainer, optimizers, task_metrics(trainer.task, trainer.loss_fn), norms)
    model = FitStep(trainer.task, loop, list(trainer.train_outputs))
    model.compile(
        optimizer=next(iter(optimizers.values())),
        steps_per_execution=trainer.cfg.train.steps_per_execution,
        jit_compile=trainer.cfg.train.jit_compile,
    )
    return model


class Runners:
    """A task's loop and its `fit` twin on the same models; each call of `loop` or `fit` runs a
    fresh iterator: one untimed call, then `steps` timed. Both return (steps/s, logged means)."""

    def __init__(self, cfg, fit: bool = True):
        from .loop.cluster import make_cluster
        from .loop.trainer import Trainer
        from .tasks.base import make_task

        task = make_task(cfg)
        self.cfg, self.source = cfg, task.source(cfg.data)
        self.trainer = Trainer(cfg, make_cluster(cfg.distribute), task, self.source)
        self.fit_model = fit_step_model(self.trainer) if fit else None
        self.chunk = cfg.train.steps_per_execution

    def batches(self):
        cfg = self.cfg
        return self.source.train_batches(self.trainer.strategy, cfg.train.batch_size, cfg.seed, 0)

    def calls(self, steps: int) -> int:
        return -(-steps // self.chunk)

    def loop(self, steps: int) -> tuple[float, dict]:
        import tensorflow as tf

        iterator, chunk = iter(self.batches()), tf.constant(self.chunk, tf.int32)
        self.trainer.collect_train_logs()  # means from this round only
        int(self.trainer.train_steps(iterator, chunk))
        start = time.perf_counter()
        for _ in range(self.calls(steps)):
            int(self.trainer.train_steps(iterator, chunk))
        seconds = time.perf_counter() - start
        return self.calls(steps) * self.chunk / seconds, self.trainer.collect_train_logs()

    def fit(self, steps: int) -> tuple[float, dict]:
        model, ends = self.fit_model, []
        model.make_train_function()
        compiled = model.train_function

        def timed(iterator):  # each compiled call of fit, its end taken where it returns
            logs = compiled(iterator)
            ends.append(time.perf_counter())
            return logs

        model.train_function, calls = timed, self.calls(steps)
        try:
            history = model.fit(
                self.batches(), steps_per_epoch=(calls + 1) * self.chunk, shuffle=False, verbose=0
            )
        finally:
            model.train_function = compiled
        logs = {name: values[-1] for name, values in history.history.items()}
        return calls * self.chunk / (ends[-1] - ends[0]), logs


# -- the figures ----------------------------------------------------------------------------------
def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def alternate(variants: dict, rounds: int, steps: int) -> dict:
    """Each variant (a callable of steps giving (steps/s, logs)) once a round, the order rotating."""
    names, rates = list(variants), {name: [] for name in variants}
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            rates[name].append(variants[name](steps)[0])
    return {name: summary(values) for name, values in rates.items()}


def bench_fit(configs: dict, rounds: int, steps: int) -> dict:
    figures = {}
    for name, cfg in configs.items():
        print(f"bench: task={name}...", file=sys.stderr, flush=True)
        runners = Runners(cfg)
        for run in (runners.loop, runners.fit):  # traced, not timed
            run(runners.chunk)
        figures[name] = alternate({"loop": runners.loop, "fit": runners.fit}, rounds, steps)
        figures[name]["ratio"] = figures[name]["loop"]["median"] / figures[name]["fit"]["median"]
    return figures


def matmul_peak(rows: int, width: int, dtype: str, chain: int = 20, repeats: int = 5) -> float:
    """GFLOP/s of `chain` dependent (rows x width) x (width x width) matmuls in `dtype` in one
    compiled call, the best of `repeats` calls after a warm-up."""
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


def bench_precision(names: str | None, overrides: list[str], rounds: int, steps: int) -> dict:
    import keras

    from .loop.threads import step_flops_estimate

    by_policy = {p: task_configs(names, overrides, [f"precision={p}"]) for p in POLICIES}
    figures = {}
    for name, cfg in by_policy["float32"].items():
        print(f"bench: task={name}, each precision...", file=sys.stderr, flush=True)
        variants = {}
        for policy in POLICIES:  # each Trainer sets its policy; its models keep it
            runners = Runners(by_policy[policy][name], fit=False)
            runners.loop(runners.chunk)  # traced, not timed
            variants[policy] = runners.loop
        keras.mixed_precision.set_global_policy("float32")
        figure = alternate(variants, rounds, steps)
        trainer, batch = runners.trainer, cfg.train.batch_size
        flops = step_flops_estimate(trainer.task, runners.source, batch)
        kernels = [v.shape for m in trainer.models.values() for v in m.trainable_variables]
        width = max([int(shape[-1]) for shape in kernels if len(shape) == 2], default=0)
        figure["step_gflop"] = flops / 1e9 if flops else None
        for policy, dtype in POLICIES.items():
            peak = matmul_peak(batch, width, dtype) if width else None
            achieved = figure[policy]["median"] * flops / 1e9 if flops else None
            figure[policy].update(
                ratio_to_float32=figure[policy]["median"] / figure["float32"]["median"],
                achieved_gflops=achieved,
                peak_gflops=peak,
                fraction_of_peak=achieved / peak if achieved and peak else None,
                matmul=[batch, width, width],
            )
        figures[name] = figure
    return figures


# -- the command ----------------------------------------------------------------------------------
def machine() -> dict:
    """CPU model, cores, AVX512-BF16 (None: unknown, not Linux), TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    info.update(avx512_bf16=None, tensorflow=tf.__version__, keras=keras.__version__)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name":
                    info["cpu"] = value
                elif key == "flags":
                    info["avx512_bf16"] = "avx512_bf16" in value.split()
                    break
    except OSError:
        pass
    return info


def _rate(figure: dict) -> str:
    return f"{figure['median']:9.1f} ({figure['min']:.0f}-{figure['max']:.0f})"


def table(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    bf16 = {True: "yes", False: "no", None: "unknown"}[m["avx512_bf16"]]
    threads = report["threads"] or "as TensorFlow already runs"
    lines = [
        f"CPU: {m['cpu']} ({m['cores']} cores, AVX512-BF16: {bf16}); TensorFlow "
        f"{m['tensorflow']}, Keras {m['keras']}; threads: {threads}",
        f"{s['rounds']} round(s) of {s['steps']} steps a runner, one device; overrides: "
        f"{' '.join(s['overrides']) or 'none'}",
    ]
    if "fit" in report:
        lines += [
            "",
            "steps/s, median (min-max)  loop: Trainer.train_steps; fit: keras.Model.fit, "
            "the task's train_step as its train_step override",
        ]
        lines.append(f"{'task':22s} {'loop':>22s} {'fit':>22s} {'loop/fit':>9s}")
        for task, f in report["fit"].items():
            lines.append(
                f"{task:22s} {_rate(f['loop']):>22s} {_rate(f['fit']):>22s} {f['ratio']:9.2f}"
            )
    for task, f in report.get("precision", {}).items():
        gflop = f"{f['step_gflop']:.3f} GFLOP a step" if f["step_gflop"] else "FLOPs unknown"
        lines += ["", f"task={task} per precision ({gflop}), loop steps/s, median (min-max)"]
        for policy in POLICIES:
            p, fraction = f[policy], f[policy]["fraction_of_peak"]
            peak = f"{p['peak_gflops']:.0f}" if p["peak_gflops"] else "?"
            share = f"{fraction:.0%} of " if fraction else ""
            lines.append(
                f"  {policy:15s} {_rate(p):>22s}  x{p['ratio_to_float32']:.2f} float32  "
                f"{share}a {peak} GFLOP/s {'x'.join(map(str, p['matmul']))} matmul peak"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .errors import EXIT_USAGE, ConfigError, RunError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        configs = task_configs(args.tasks, args.overrides)  # a bad value fails before TensorFlow
        report = {"threads": set_threads(configs), "machine": machine()}
        report["settings"] = {
            "rounds": args.rounds,
            "steps": args.steps,
            "overrides": args.overrides,
        }
        if args.precision:
            report["precision"] = bench_precision(
                args.tasks, args.overrides, args.rounds, args.steps
            )
        else:
            report["fit"] = bench_fit(configs, args.rounds, args.steps)
    except (ConfigError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
