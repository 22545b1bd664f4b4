"""pytest-cookies verifies that the generated projects install, pass their own tests and train.

Every bake is installed into this one environment (`pip install --no-deps -e`: the
dependencies are already here), so each option combination costs seconds, not a fresh
TensorFlow install.
"""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import tensorflow as tf

from .conftest import CONTEXT, SUPPORTED, combo_id, install, run

pytestmark = pytest.mark.slow

PACKAGE = "custom_tf_project"
SHORT_RUN = [
    "train.steps=60",
    "checkpoint.every_steps=20",
    "train.log_every_steps=10",
    "eval.every_steps=30",
]


@pytest.fixture(scope="module")
def default_bake(cookies_session):
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    install(result.project_path)
    return result.project_path


def python(project, *arguments):
    """A command run by the python of `project`'s own (layered) virtualenv."""
    return [install(project), *map(str, arguments)]


def train(project, run_dir, *overrides, check=True):
    command = python(project, "-m", f"{PACKAGE}.train", f"run_dir={run_dir}", *overrides)
    return run(command, cwd=project, check=check)


def losses(run_dir):
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as file:
        return [json.loads(line)["loss"] for line in file if "loss" in json.loads(line)]


# The bake's own whole suite, in three parts of a few minutes each that run side by side with
# the rest (`make test` runs `pytest -n`); together they are every test: a new test file of the
# bake lands in "slow-rest" or "fast".
RECOVERY = ["tests/test_fault_tolerance.py", "tests/test_deploy.py", "tests/test_sweep.py"]
# The fast tier runs every per-task test on every task. The slow per-task tests (two workers,
# SIGTERM and a restart, a package-free export: the loop's and export's machinery, the same
# for every task) run on the task with its own step and two models; the slow tier's other
# tests (two workers on shards and per epoch, SIGTERM to launch, every kill-and-resume run)
# train the reference step, and the digits test below serves a package-free export.
SLOW_TASKS = ["--task=gan"]
OWN_SUITE = {
    "fast": ["-m", "not slow"],
    "slow-recovery": ["-m", "slow", *SLOW_TASKS, *RECOVERY],
    "slow-rest": ["-m", "slow", *SLOW_TASKS, *(f"--ignore={path}" for path in RECOVERY)],
}


@pytest.mark.minutes(9)
@pytest.mark.parametrize("part", OWN_SUITE.values(), ids=OWN_SUITE.keys())
def test_default_bake_passes_its_own_test_suite(default_bake, part):
    suite = python(default_bake, "-m", "pytest", "-q", "-p", "no:cacheprovider", *part)
    done = run(suite, cwd=default_bake, timeout=1800)
    assert re.search(r"\d+ passed", done.stdout.strip().splitlines()[-1]), done.stdout[-2000:]


# The tests of a bake that read its default task (the config's defaults, the docs that name the
# default); everything else names its task, and the per-task tests run for every task in the
# default bake's own suite.
READS_THE_DEFAULT = ["tests/test_config.py", "tests/test_docs.py"]


@pytest.mark.minutes(2)
@pytest.mark.parametrize("task", CONTEXT["default_task"][1:])
def test_a_bake_of_each_other_default_task_passes_the_tests_that_read_it(cookies_session, task):
    # With the solutions kit (its tests are the research bake's and the teaching ones). Such a
    # bake differs from the default one only where the default task is named (test_bake.py).
    result = cookies_session.bake(extra_context={"default_task": task, "starter_kit": "solutions"})
    assert result.exit_code == 0, result.exception
    project = result.project_path
    suite = python(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow")
    done = run([*suite, f"--task={task}", *READS_THE_DEFAULT], cwd=project, timeout=1800)
    last = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", last) and "failed" not in last, done.stdout[-2000:]


def test_default_bake_trains_leaves_a_loadable_checkpoint_evaluates_and_exports(
    default_bake, tmp_path
):
    run_dir = tmp_path / "run"
    train(default_bake, run_dir, *SHORT_RUN)
    values = losses(run_dir)
    assert len(values) == 6 and values[-1] < values[0]
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-60"))
    assert reader.get_variable_to_shape_map()
    run(python(default_bake, "-m", f"{PACKAGE}.evaluate", f"run_dir={run_dir}"), cwd=default_bake)
    assert json.loads((run_dir / "eval.json").read_text())["step"] == 60
    run(python(default_bake, "-m", f"{PACKAGE}.export", f"run_dir={run_dir}"), cwd=default_bake)
    assert (run_dir / "export" / "model.keras").is_file()


@pytest.mark.minutes(2)
def test_default_bake_classifies_digits_and_serves_class_ids_without_the_package(
    default_bake, tmp_path
):
    run_dir = tmp_path / "digits"
    train(default_bake, run_dir, "task=image_classification")  # the README's command, defaults
    final = json.loads((run_dir / "final_metrics.json").read_text())
    assert final["step"] == 3000 and final["eval_accuracy"] >= 0.95, final
    run(python(default_bake, "-m", f"{PACKAGE}.export", f"run_dir={run_dir}"), cwd=default_bake)
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        "from sklearn.datasets import load_digits\n"
        "x, y = load_digits(return_X_y=True)\n"
        "x = (x / 16.0).reshape(-1, 8, 8, 1).astype('float32')\n"
        f"served = tf.saved_model.load({str(run_dir / 'export' / 'saved_model')!r})\n"
        "out = served.signatures['serving_default'](inputs=tf.constant(x))\n"
        "assert not [m for m in sys.modules if m.startswith('custom_tf_project')]\n"
        "print((out['class_ids'].numpy() == y).mean())\n"
    )
    done = run(python(default_bake, "-c", code), cwd=tmp_path)
    assert float(done.stdout.strip()) >= 0.95  # every digit, training and held-out


def test_bad_run_time_value_is_one_line_without_traceback(default_bake, tmp_path):
    done = train(default_bake, tmp_path / "run", "train.batch_size=-4", check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: train.batch_size=-4: must be a positive integer"
    assert not (tmp_path / "run").exists()


TASKS = CONTEXT["default_task"]  # every shipped task


def task_of(combo):
    """The task a combination trains: a Latin square over (strategy, precision), so every
    strategy and every precision answer trains every task (each task's behaviour under each
    strategy and policy is the bake's own per-task tests'; here, that the answer bakes a
    default that trains)."""
    strategy, precision = combo
    index = CONTEXT["distribution_strategy"].index(strategy)
    index += CONTEXT["mixed_precision"].index(precision)
    return TASKS[index % len(TASKS)]


def test_the_combinations_train_every_task_under_every_strategy_and_every_precision():
    for position, answers in (
        (0, CONTEXT["distribution_strategy"]),
        (1, CONTEXT["mixed_precision"]),
    ):
        for answer in answers:
            trained = {task_of(combo) for combo in SUPPORTED if combo[position] == answer}
            if answer != "tpu":  # a TPU run is refused here; its bake trains one task on CPU
                assert trained == set(TASKS), (answer, trained)


@pytest.mark.minutes(1)
@pytest.mark.parametrize("combo", SUPPORTED, ids=combo_id)
def test_every_supported_combination_bakes_installs_and_trains_its_default(
    cookies, tmp_path, combo
):
    strategy, precision = combo
    result = cookies.bake(
        extra_context={"distribution_strategy": strategy, "mixed_precision": precision}
    )
    assert result.exit_code == 0, result.exception
    project = result.project_path
    overrides = list(SHORT_RUN)
    if strategy == "mirrored":
        # two replicas on the CPU; a short last eval batch leaves one replica empty
        overrides += ["distribute.cpu_devices=2", "eval.batch_size=7"]
    if strategy == "tpu":  # no TPU here: the default must refuse in one line, then train on CPU
        refused = train(project, tmp_path / "tpu", "train.steps=2", check=False)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1].startswith("error: distribute=tpu: no TPU")
        overrides.append("distribute=none")
    task = task_of(combo)
    run_dir = tmp_path / task
    train(project, run_dir, f"task={task}", *overrides)
    values = losses(run_dir)
    assert values[-1] < values[0], (task, values)
    assert (run_dir / "checkpoints" / "ckpt-60.index").is_file()
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["precision"] == ("float32" if precision == "none" else precision)
    assert run_json["config"]["task"]["_target_"].endswith("Task")
    if strategy == "mirrored":
        assert run_json["num_replicas"] == 2


OUTSIDE = Path(__file__).parent / "outside_task"
OUTSIDE_TASK = OUTSIDE / "gru_regressor.py"
# A task with its own training step (two models, two optimizers, several critic updates per
# generator update, a nested tape), written against the bake's docs/custom-step.md only.
OUTSIDE_STEP = OUTSIDE / "wgan_gp.py"


@pytest.mark.minutes(6)
def test_a_plain_keras_task_file_dropped_into_tasks_gets_every_per_task_guarantee(
    cookies, tmp_path
):
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    for task_file in (OUTSIDE_TASK, OUTSIDE_STEP):  # the only change: files in tasks/
        shutil.copy(task_file, project / "src" / PACKAGE / "tasks")
    # The bake's fast suite on the new tasks: every per-task guarantee (resume, 2 replicas,
    # float16 / bfloat16, exact evaluation with an empty replica, export and serving, shards),
    # for a plain Keras task and for one with its own step.
    done = run(
        python(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow")
        + ["-k", "gru_regressor or wgan_gp"],
        cwd=project,
        timeout=1800,
    )
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed >= 40 and "failed" not in done.stdout, done.stdout[-2000:]

    # Killed with SIGKILL midway, the same command resumes from the last checkpoint.
    run_dir = tmp_path / "gru"
    command = python(project, "-m", f"{PACKAGE}.train", f"run_dir={run_dir}", "task=gru_regressor")
    command += ["train.steps=1000", "checkpoint.every_steps=100", "eval.every_steps=500"]
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "ckpt-200.index").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (run_dir / "final_metrics.json").exists()  # it did not finish
    resumed = run(command, cwd=project)  # the same command
    assert "resumed from" in resumed.stderr
    assert json.loads((run_dir / "final_metrics.json").read_text())["step"] == 1000

    # Evaluates, exports, reloads as .keras after `import <package>`, serves without it.
    run(python(project, "-m", f"{PACKAGE}.evaluate", f"run_dir={run_dir}"), cwd=project)
    run(python(project, "-m", f"{PACKAGE}.export", f"run_dir={run_dir}"), cwd=project)
    export = run_dir / "export"
    reload = (
        f"import {PACKAGE}, keras, numpy as np\n"
        f"model = keras.models.load_model({str(export / 'model.keras')!r})\n"
        "print(type(model).__name__, model(np.ones((2, 6, 1), 'float32')).shape)\n"
    )
    assert run(python(project, "-c", reload), cwd=tmp_path).stdout.split() == [
        "GRURegressor",
        "(2,",
        "1)",
    ]
    serve = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({str(export / 'saved_model')!r})\n"
        "x = np.ones((3, 6, 1), 'float32')\n"
        "out = served.signatures['serving_default'](inputs=tf.constant(x))['predictions']\n"
        f"assert not [m for m in sys.modules if m.startswith({PACKAGE!r})]\n"
        "print(abs(float(out.numpy().mean()) - 1.8) < 0.5)\n"
    )
    assert run(python(project, "-c", serve), cwd=tmp_path).stdout.strip() == "True"

    # Benches like every task: the loop against fit running its step as a train_step override.
    report = tmp_path / "bench.json"
    bench = python(project, "-m", f"{PACKAGE}.bench", "--tasks", "gru_regressor", "--rounds", "1")
    run([*bench, "--steps", "20", "--json", str(report)], cwd=project)
    assert json.loads(report.read_text())["fit"]["gru_regressor"]["ratio"] > 0
