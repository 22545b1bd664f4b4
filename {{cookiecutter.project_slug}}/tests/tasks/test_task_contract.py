"""A new task is one module: this one lives only in the tests and runs through the unchanged loop.

`TinyTask` is what a researcher writes for their own problem: a config dataclass and a `Task`
subclass with Keras' built-in model, loss and metric. Naming it makes `task=tiny_contract` a
command-line option; training, resuming, evaluating and exporting then need nothing else.
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.config import load_config, positive
from {{ cookiecutter.package_name }}.data import Arrays
from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.evaluate import evaluate
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics
from {{ cookiecutter.package_name }}.tasks.base import Task, TaskConfig


@dataclass
class TinyConfig(TaskConfig):
    units: int = positive(8)
    size: int = positive(256)


class TinyTask(Task, name="tiny_contract"):
    """y = 3 x0 - 2 x1 + 1 from two inputs, with Keras' own Dense, MSE and MAE."""

    config_class = TinyConfig
    identity_keys = ("units",)

    def make_arrays(self):
        rng = np.random.default_rng(self.seed)
        x = rng.uniform(-1, 1, (self.config.size, 2)).astype(np.float32)
        y = (3 * x[:, :1] - 2 * x[:, 1:] + 1).astype(np.float32)
        return Arrays(x[:200], y[:200], x[200:], y[200:])

    def build_model(self):
        import keras

        return keras.Sequential(
            [keras.layers.Dense(self.config.units, activation="relu"), keras.layers.Dense(1)]
        )

    def build_loss(self, reduction="sum_over_batch_size"):
        import keras

        return keras.losses.MeanSquaredError(reduction=reduction)

    def build_metrics(self):
        import keras

        return [keras.metrics.MeanAbsoluteError(name="abs_error")]


SMALL = [
    "task=tiny_contract",
    "train.batch_size=20",
    "train.steps_per_execution=5",
    "train.log_every_steps=10",
    "eval.every_steps=20",
    "checkpoint.every_steps=20",
    "optimizer.learning_rate=0.01",
]


def config(run_dir, *overrides):
    return load_config([f"run_dir={run_dir}", *SMALL, *overrides])


def test_a_task_written_outside_the_package_trains_resumes_evaluates_and_exports(tmp_path):
    run_dir = tmp_path / "run"
    train_and_evaluate(config(run_dir, "train.steps=40", "deterministic=true"))
    result = train_and_evaluate(config(run_dir, "train.steps=200", "deterministic=true"))
    records = read_metrics(str(run_dir))
    assert [r["step"] for r in records][:5] == [10, 20, 30, 40, 50]  # resumed, not restarted
    assert records[-1]["loss"] < 0.2 * records[0]["loss"]
    assert {"abs_error", "eval_loss", "eval_abs_error"} <= set(result)

    straight = tmp_path / "straight"
    assert (
        train_and_evaluate(config(straight, "train.steps=200", "deterministic=true"))[
            "weights_sha256"
        ]
        == result["weights_sha256"]
    )  # resuming changed nothing, bitwise

    evaluated = evaluate(config(run_dir))
    assert evaluated["step"] == 200 and evaluated["num_examples"] == 56
    assert evaluated["eval_abs_error"] == pytest.approx(result["eval_abs_error"], rel=1e-6)

    exported = export(config(run_dir))
    served = tf.saved_model.load(os.path.join(exported, "saved_model"))
    x = np.array([[0.5, -0.5], [0.0, 0.0]], np.float32)
    predictions = served.signatures["serving_default"](inputs=tf.constant(x))["predictions"]
    np.testing.assert_allclose(predictions.numpy()[:, 0], [3.5, 1.0], atol=0.3)
    with open(os.path.join(exported, "run.json"), encoding="utf-8") as file:
        assert json.load(file)["config"]["task"]["units"] == 8


def test_its_keys_are_typed_and_its_identity_keys_guard_the_run_dir(tmp_path):
    with pytest.raises(Exception, match="task.units=-3: must be a positive integer"):
        config(tmp_path / "run", "task.units=-3")
    train_and_evaluate(config(tmp_path / "run", "train.steps=20"))
    with pytest.raises(RunError, match="task.units was 8, now 4"):
        train_and_evaluate(config(tmp_path / "run", "train.steps=40", "task.units=4"))


def test_a_task_without_a_head_refuses_two_optimizers_in_one_line(tmp_path):
    cfg = config(tmp_path / "run", "train.steps=20", "optimizer.head_learning_rate=0.1")
    with pytest.raises(RunError, match="task=tiny_contract does not say which variables") as error:
        train_and_evaluate(cfg)
    assert "\n" not in str(error.value)
