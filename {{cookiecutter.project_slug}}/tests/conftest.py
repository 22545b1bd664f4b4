"""Shared fixtures: the real default config, shrunk to run in seconds inside `tmp_path`.

A test taking `task` runs once per task of the package (`pytest --task=NAME` picks one).
{%- if cookiecutter.starter_kit != "none" %}

An unfinished exercise (exercises kit) makes the tests it stops expected failures: see
`pytest_runtest_makereport` below.
{%- endif %}
"""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

{% if cookiecutter.starter_kit != "none" -%}
from {{ cookiecutter.package_name }}.check import (  # noqa: E402
    deciding_exercise,
    unfinished_exercise,
    unfinished_exercise_in_output,
)
{% endif -%}
from {{ cookiecutter.package_name }}.config import load_config  # noqa: E402
from {{ cookiecutter.package_name }}.tasks.base import shipped_tasks, task_class  # noqa: E402

# Two logical CPU devices for the whole session, set before any op runs: the MirroredStrategy
# tests run 2 replicas on them; everything else runs on /cpu:0 as usual.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
# One intra-op thread, as the training command picks for these small models
# (loop/threads.py): a run here and the same run in a subprocess do the same arithmetic.
tf.config.threading.set_intra_op_parallelism_threads(1)

# The real default config, shrunk: the loop's settings for every task, then each task's own
# (`Task.small_overrides`: fewer examples and narrower models, so a run takes seconds;
# test_models covers the full-size models).
SMALL = [
    "train.steps=40",
    "train.batch_size=32",
    "train.steps_per_execution=5",
    "train.log_every_steps=10",
    "eval.every_steps=20",
    "checkpoint.every_steps=20",
]
# Relative tolerance of a result against the same arithmetic done in another order (batched
# against whole, another kernel), by the precision policy's compute dtype: TensorFlow's own
# `assertAllCloseAccordingToType` (float32 1e-6 there; 1e-5 here for sums over a split). A
# tighter one passes on one CPU and fails on the next: oneDNN's 16-bit kernels round per CPU.
RTOL = {"float32": 1e-5, "mixed_float16": 1e-3, "mixed_bfloat16": 1e-2}
# Every task module of the package: a new one under tasks/ is tested with no edit here.
TASKS = tuple(shipped_tasks())


def task_class_of(name: str):
    """The Task class registered as `task=<name>`."""
    return task_class(load_config([f"task={name}"]).task._target_)


def small(task: str) -> list[str]:
    """The overrides that shrink `task` (its `small_overrides`)."""
    return list(task_class_of(task).small_overrides)


def noise_free(task: str) -> list[str]:
    """The overrides that switch off `task`'s training-time noise (its `noise_free_overrides`)."""
    return list(task_class_of(task).noise_free_overrides)


def has_own_step(task: str) -> bool:
    """Whether `task` writes its own training step (else it takes the reference step)."""
    return task_class_of(task).has_own_step()


def metric_names(cfg) -> list[str]:
    """The names the loop logs for the task's metrics (`<output>_<name>` per named output)."""
    from {{ cookiecutter.package_name }}.loop.outputs import TaskLoss, task_metrics
    from {{ cookiecutter.package_name }}.tasks.base import make_task

    task = make_task(cfg)
    task_loss = TaskLoss(task.build_loss(reduction=None), task.loss_weights(), task.name)
    return [metric.name for metric in task_metrics(task, task_loss)]


@pytest.fixture
def make_config(tmp_path):
    """`make_config("train.steps=20", ..., task="regression")`: the shrunk default config of
    `task` plus overrides."""

    def make(*overrides, run_dir=None, task="regression"):
        run_dir = run_dir or tmp_path / "run"
        return load_config([f"run_dir={run_dir}", f"task={task}", *SMALL, *small(task), *overrides])

    return make


def pytest_addoption(parser):
    parser.addoption(
        "--task",
        action="append",
        default=[],
        help="run the per-task tests on this task only (repeatable; default: every task)",
    )


def pytest_generate_tests(metafunc):
    """A test taking `task` runs once per task of the package: what the loop promises holds
    for every task, through the Task interface only (a failure names the task in the test id).
    `pytest --task=<name>` runs them on one task, e.g. the one you are writing; they are marked
    `per_task` (`-m "not per_task"` runs the rest)."""
    if "task" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("task") or list(TASKS)
        unknown = sorted(set(chosen) - set(TASKS))
        if unknown:
            raise pytest.UsageError(f"--task={unknown[0]}: choose from {', '.join(TASKS)}")
        metafunc.parametrize(
            "task", [pytest.param(name, marks=pytest.mark.per_task) for name in chosen]
        )


def python_output(code: str) -> str:
    """The stdout of `code` run by a fresh interpreter that sees this session's packages; for
    what a process imports at start-up (TensorFlow must stay out of config checks)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout


@pytest.fixture
def mixed_bfloat16():
    """Layers built inside the test compute in bfloat16 and keep float32 variables."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts from the float32 policy and Keras' default names."""
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)

{%- if cookiecutter.starter_kit != "none" %}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(call):
    """A test stopped by an unfinished exercise is an expected failure (xfail), never an error.

    At setup or in the test; also when a command it ran (in a child process, or in-process
    through `cli.run`, which turns the error into one line and an exit code) stopped on one: its
    output is all there is. Once the exercise is written the test runs as usual, and a failing
    test that decides an exercise names it.
    """
    report = yield
    if not report.failed:
        return report
    reason = unfinished_exercise(call.excinfo.value if call.excinfo else None)
    if not reason:
        output = [report.longreprtext, *(content for _, content in report.sections)]
        reason = unfinished_exercise_in_output("\n".join(output))
    exercise = deciding_exercise(report.nodeid)
    if reason:
        report.outcome, report.wasxfail = "skipped", reason
    elif exercise is not None:
        report.sections.append(
            (
                "exercise",
                f"this test decides exercise {exercise.name}: "
                f"{exercise.where} (the comment atop its body says what to write)",
            )
        )
    return report
{%- endif %}
