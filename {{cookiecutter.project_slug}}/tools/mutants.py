"""Mutation testing: plausible wrong versions of each technique must fail its tests.

    python tools/mutants.py              # every mutant (make mutants), ~14 min on 2 CPU cores
    python tools/mutants.py --only loss  # the mutants of one exercise

Each mutant is one text replacement in `src/`, written as a student (or a hurried researcher)
would get it wrong. For each, the file is changed, the tests that decide its exercise (the same
ones `check` runs) run in a fresh process, and the file is put back, whatever happens. A mutant
is caught when a test fails. The run ends with the score and exits 1 if any mutant survives.

General tools (mutmut, cosmic-ray) mutate operators blindly and re-run the whole suite per
mutant: thousands of TensorFlow start-ups. A curated list tries the mistakes that matter, each
against the tests that should catch it, in minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = next(path.parent.name for path in (ROOT / "src").glob("*/check.py"))
SOURCE = ROOT / "src" / PACKAGE


@dataclass(frozen=True)
class Mutant:
    exercise: str
    path: str  # under src/<package>/
    original: str  # must occur exactly once in the file
    mutated: str
    why: str


MUTANTS = (
    Mutant(
        "activation",
        "components/activations.py",
        "ops.softplus(x * scale) / scale",
        "ops.softplus(x * scale)",
        "forgets to divide by the scale",
    ),
    Mutant(
        "activation",
        "components/activations.py",
        "ops.softplus(x * scale) / scale",
        "ops.softplus(x) / scale",
        "scales only the output",
    ),
    Mutant(
        "initializer",
        "components/initializers.py",
        "dtype=dtype, seed=self._draw_seed)",
        "dtype=dtype, seed=self.seed)",
        "an unseeded instance draws new values at every call",
    ),
    Mutant(
        "initializer",
        "components/initializers.py",
        "stddev = _glorot_stddev(shape, self.gain)",
        "stddev = _glorot_stddev(shape, 1.0)",
        "ignores the gain",
    ),
    Mutant(
        "initializer",
        "components/initializers.py",
        "keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0), dtype=dtype)",
        "keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0))",
        "ignores the requested dtype",
    ),
    Mutant(
        "regularizer",
        "components/regularizers.py",
        "factor * ops.sum(ops.abs(weights))",
        "factor * ops.sum(ops.square(weights))",
        "an L2 penalty instead of L1",
    ),
    Mutant(
        "regularizer",
        "components/regularizers.py",
        "factor * ops.sum(ops.abs(weights))",
        "factor * ops.mean(ops.abs(weights))",
        "a mean instead of a sum",
    ),
    Mutant(
        "constraint",
        "components/constraints.py",
        "ops.where(weights < 0, ops.zeros_like(weights), weights)",
        "ops.abs(weights)",
        "flips negative weights instead of clipping them",
    ),
    Mutant(
        "constraint",
        "components/constraints.py",
        "ops.maximum(weights, ops.cast(self.min_value, weights.dtype))",
        "ops.maximum(weights, ops.cast(0.0, weights.dtype))",
        "ignores min_value",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "linear = threshold * abs_error - 0.5 * threshold**2",
        "linear = abs_error - 0.5 * threshold**2",
        "slope 1 beyond the threshold",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "linear = threshold * abs_error - 0.5 * threshold**2",
        "linear = threshold * abs_error - 0.5 * threshold",
        "t |e| - t / 2",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "ops.where(abs_error < threshold, squared, linear)",
        "ops.where(abs_error > threshold, squared, linear)",
        "the regions swapped",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "return ops.mean(ops.where(abs_error < threshold, squared, linear), axis=-1)",
        "return ops.sum(ops.where(abs_error < threshold, squared, linear), axis=-1)",
        "a sum over the last axis instead of a mean",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "(per_sample * weights))\n        self.count.assign_add(ops.sum(weights))",
        "(per_sample * weights))\n        self.count.assign_add(1.0)",
        "counts batches: a mean of batch means",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "self.total.assign_add(ops.sum(per_sample * weights))",
        "self.total.assign_add(ops.sum(per_sample))",
        "ignores sample weights in the total",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "per_sample = ops.mean(ops.abs(y_true - y_pred), axis=-1)",
        "per_sample = ops.sum(ops.abs(y_true - y_pred), axis=-1)",
        "sums the errors of a sample's outputs",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "return ops.divide_no_nan(self.total, self.count)",
        "return self.total / self.count",
        "nan before the first update",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "            constraint=self.kernel_constraint,\n",
        "",
        "drops the kernel constraint",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "            regularizer=self.kernel_regularizer,\n",
        "",
        "drops the kernel regularizer",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "return self.activation(outputs)",
        "return outputs",
        "forgets the activation",
    ),
    Mutant(
        "residual_block",
        "components/layers/residual.py",
        "            outputs = layer(outputs)\n        return inputs + outputs",
        "            outputs = outputs + layer(outputs)\n        return outputs",
        "adds the skip after every layer",
    ),
    Mutant(
        "residual_block",
        "components/layers/residual.py",
        "            outputs = layer(outputs)\n",
        "            outputs = layer(inputs)\n",
        "feeds every layer the block's input",
    ),
    Mutant(
        "residual_block",
        "components/layers/residual.py",
        "return inputs + outputs",
        "return outputs",
        "no skip connection",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        "reconstruction_loss = self.reconstruction_weight * error",
        "reconstruction_loss = error",
        "the auxiliary loss without its weight",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        'error = ops.mean(ops.square(reconstruction - ops.cast(inputs, "float32")))',
        "error = ops.cast(ops.mean(ops.square(ops.cast(reconstruction, inputs.dtype) - inputs)),"
        ' "float32")',
        "the auxiliary loss computed in the compute dtype (bfloat16)",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        "hidden = self.noise(hidden, training=training)",
        "hidden = self.noise(hidden, training=True)",
        "noise at inference too",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        "        if training:\n            self.reconstruction_tracker.update_state",
        "        if True:\n            self.reconstruction_tracker.update_state",
        "the tracker updated at inference too",
    ),
    Mutant(
        "custom_gradient",
        "autodiff.py",
        "return upstream * (1.0 - 1.0 / (1.0 + tf.exp(z)))",
        "return 1.0 - 1.0 / (1.0 + tf.exp(z))",
        "ignores the upstream gradient",
    ),
    Mutant(
        "custom_gradient",
        "autodiff.py",
        "return upstream * (1.0 - 1.0 / (1.0 + tf.exp(z)))",
        "return upstream * tf.exp(z) / (1.0 + tf.exp(z))",
        "the naive sigmoid: nan at z=100",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "own = loop.model_losses(model)  # the model's add_loss terms, float32",
        "own = tf.constant(0.0)",
        "forgets the model's own losses",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "predictions = model(inputs, training=True)",
        "predictions = model(inputs, training=False)",
        "the model in inference mode",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "loss = loop.compute_average_loss(per_example) + loop.scale_regularization_loss(own)",
        "loss = tf.reduce_mean(per_example) + loop.scale_regularization_loss(own)",
        "averages per replica, not over the global batch",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "loss = loop.compute_average_loss(per_example) + loop.scale_regularization_loss(own)",
        "loss = loop.compute_average_loss(per_example) + own",
        "the model's losses counted once per replica",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        'return {"loss": per_example + own}',
        'return {"loss": per_example}',
        "the logged loss leaves out the model's own losses",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        'return {"loss": per_example + own}',
        'return {"loss": loss}',
        "logs the replica's share of the loss (halved on 2 replicas)",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "for metric in loop.metrics:\n            metric.update_state(targets, predictions)",
        "for metric in loop.metrics:\n            metric.update_state(predictions, targets)",
        "the train metrics' arguments swapped (classifier accuracy 0)",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "loop.apply_gradients(tape, loss)\n        for metric",
        "loop.apply_gradients(tape, loop.compute_average_loss(per_example))\n        for metric",
        "the update leaves out the model's own losses (the logged loss keeps them)",
    ),
    Mutant(
        "train_step",
        "tasks/base.py",
        "for metric in loop.metrics:\n            metric.update_state(targets, predictions)",
        "for metric in loop.metrics[:0]:\n            metric.update_state(targets, predictions)",
        "no training metric is updated",
    ),
    Mutant(
        "train_step",
        "loop/step.py",
        "        if self.loss_scaled:  # each optimizer's own (dynamic) loss scale\n",
        "        if False:\n",
        "no loss scaling under float16",
    ),
    Mutant(
        "train_step",
        "loop/step.py",
        "share = gradients[start:end]",
        "share = gradients[: end - start]",
        "gives every optimizer the first gradients",
    ),
    Mutant(
        "train_step",
        "loop/step.py",
        "gradients, norm = self._clip(gradients, scales[0])",
        "gradients, norm = self._clip(gradients, 1.0)",
        "clips and reports the scaled gradients under float16",
    ),
    Mutant(
        "train_step",
        "loop/step.py",
        "self._norms[key].update_state(tf.where(finite, norm, 0.0), sample_weight=weight)",
        "self._norms[key].update_state(\n"
        "                tf.linalg.global_norm(gradients) / scales[0], sample_weight=weight\n"
        "            )",
        "logs the norm of the clipped gradients",
    ),
    Mutant(
        "train_step",
        "loop/controller.py",
        "    trainer.apply_configured_learning_rates()\n",
        "",
        "keeps the checkpoint's learning rate on resume",
    ),
    Mutant(
        "initializer",
        "components/initializers.py",
        "keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0), dtype=dtype)",
        "keras.random.normal(shape, stddev=math.sqrt(2.0 / (shape[0] + shape[-1])), dtype=dtype)",
        "fans from the first and last axes alone: wrong for convolution kernels",
    ),
    Mutant(
        "initializer",
        "components/initializers.py",
        "keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0), dtype=dtype)",
        "keras.random.normal(shape, stddev=_glorot_stddev(shape, 1.0), dtype=dtype, seed=0)",
        "the function draws with seed=0: every kernel of a shape is the same",
    ),
    Mutant(
        "constraint",
        "components/constraints.py",
        "ops.maximum(weights, ops.cast(self.min_value, weights.dtype))",
        "ops.maximum(weights, ops.convert_to_tensor(self.min_value))",
        "the floor not cast: float16 and bfloat16 weights come back float32",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "ops.mean(ops.where(abs_error < threshold, squared, linear), axis=-1)",
        "ops.mean(ops.where(abs_error < threshold, squared, linear), axis=1)",
        "the mean over axis 1, not the last (wrong for (batch, ..., d))",
    ),
    Mutant(
        "loss",
        "components/losses.py",
        "    y_pred = ops.convert_to_tensor(y_pred)\n    y_true = ops.cast(y_true, y_pred.dtype)",
        "    y_true = ops.convert_to_tensor(y_true)\n    y_pred = ops.cast(y_pred, y_true.dtype)",
        "casts the predictions to the targets' dtype (integer targets truncate them)",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "return ops.divide_no_nan(self.total, self.count)",
        "return self.total / ops.maximum(self.count, 1.0)",
        "total / max(count, 1): weights summing below 1 give the wrong mean",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "input_dim = input_shape[-1]",
        "input_dim = input_shape[1]",
        "the input size from axis 1 (inputs of rank 3 and more break)",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "if self.use_bias:",
        "if self.units:",
        "use_bias=False ignored",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})\n",
        "",
        "no input_spec: inputs of another size reach the matmul",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        '            "use_bias": self.use_bias,\n',
        "",
        "get_config without use_bias: a rebuilt layer grows a bias",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        '            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),\n',
        "",
        "get_config without kernel_constraint: a rebuilt layer stops clipping",
    ),
    Mutant(
        "residual_block",
        "components/layers/residual.py",
        "return inputs + outputs",
        "return self.activation(inputs + outputs)",
        "the activation after the skip connection (a -5 becomes 0)",
    ),
    Mutant(
        "residual_block",
        "components/layers/residual.py",
        '            "seed": self.seed,\n',
        "",
        "get_config without seed: a rebuilt block draws other kernels",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        "hidden = self.input_projection(inputs)\n"
        "        hidden = self.noise(hidden, training=training)",
        "hidden = self.input_projection(self.noise(inputs, training=training))",
        "the noise on the raw inputs, before the projection",
    ),
    Mutant(
        "custom_gradient",
        "autodiff.py",
        "tf.math.log1p(tf.exp(-tf.abs(z)))",
        "tf.math.log(1.0 + tf.exp(-tf.abs(z)))",
        "log(1 + exp(-|z|)) for log1p: softplus(-30) becomes 0",
    ),
    Mutant(
        "metric",
        "components/metrics.py",
        "per_sample = ops.mean(ops.abs(y_true - y_pred), axis=-1)",
        "per_sample = ops.abs(ops.mean(y_true - y_pred, axis=-1))",
        "the absolute value of the mean error (equal while a sample's errors share a sign)",
    ),
    Mutant(
        "model",
        "models/residual_regressor.py",
        "        hidden = self.noise(hidden, training=training)\n"
        "        for block in self.blocks:\n"
        "            hidden = block(hidden)\n",
        "        for block in self.blocks:\n"
        "            hidden = block(hidden)\n"
        "        hidden = self.noise(hidden, training=training)\n",
        "the training noise after the residual blocks (the same without blocks)",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        "            initializer=self.kernel_initializer,\n",
        "",
        "ignores its kernel initializer",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        'self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")',
        'self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="ones")',
        "the bias starts at ones",
    ),
    Mutant(
        "dense_layer",
        "components/layers/dense.py",
        'self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")',
        "self.bias = self.add_weight(\n"
        '                name="bias",\n'
        "                shape=(self.units,),\n"
        '                initializer="zeros",\n'
        "                regularizer=self.kernel_regularizer,\n"
        "            )",
        "regularizes the bias with the kernel's regularizer",
    ),
)


def tests_of(exercise: str) -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from importlib import import_module

    check = import_module(f"{PACKAGE}.check")
    chosen = next(e for e in check.EXERCISES if e.name == exercise)
    return list(dict.fromkeys(t.split("::")[0] if "[" in t else t for t in chosen.tests))


def problems_of(chosen) -> list[str | None]:
    """Per mutant, why it no longer applies (its original text is not exactly once in the
    file), or None."""
    found = []
    for mutant in chosen:
        count = (SOURCE / mutant.path).read_text(encoding="utf-8").count(mutant.original)
        found.append(
            None
            if count == 1
            else f"{mutant.exercise}: {mutant.why}: {mutant.path} has the original {count} times"
        )
    return found


def run(mutant: Mutant, timeout: int) -> tuple[bool, float]:
    """(caught, seconds): applies the mutant, runs its exercise's tests, restores the file."""
    path = SOURCE / mutant.path
    original = path.read_text(encoding="utf-8")
    start = time.perf_counter()
    try:
        path.write_text(original.replace(mutant.original, mutant.mutated, 1), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
            *tests_of(mutant.exercise),
        ]
        try:
            # This tree's src first, whichever copy of the package is installed.
            paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
            done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=timeout, env=env)
            caught = done.returncode != 0
        except subprocess.TimeoutExpired:
            caught = True  # a mutant that hangs the tests is caught too
    finally:
        path.write_text(original, encoding="utf-8")
    return caught, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the mutants of this exercise only")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per mutant")
    args = parser.parse_args(argv)
    if args.only and args.only not in {m.exercise for m in MUTANTS}:
        print(f"error: --only={args.only}: no mutant of that exercise")
        return 2
    problems = problems_of(MUTANTS)
    stale = [problem for problem in problems if problem]
    if stale:  # a student's (or researcher's) own wording, or an exercise not written yet
        print(
            f"{len(stale)} mutants skipped: each is written against the solutions kit's "
            "wording, and this code is worded otherwise (or not written yet):",
            *stale,
            sep="\n  ",
        )
    applicable = [m for m, problem in zip(MUTANTS, problems) if problem is None]
    chosen = [m for m in applicable if args.only in (None, m.exercise)]
    if not chosen:
        print("no mutant applies here: nothing to run")
        return 0
    survivors, begun = [], time.perf_counter()
    for mutant in chosen:
        caught, seconds = run(mutant, args.timeout)
        print(
            f"{'caught  ' if caught else 'SURVIVED'} {seconds:5.1f} s  {mutant.exercise}: "
            f"{mutant.why}",
            flush=True,
        )
        if not caught:
            survivors.append(mutant)
    total = time.perf_counter() - begun
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants caught in {total:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
