"""The progress command's pieces: exercise messages, statuses and the tests it names."""

import ast
import json
import re
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.check import (
    EXERCISES,
    Outcomes,
    deciding_exercise,
    grades,
    status_of,
    statuses_of,
    unfinished_exercise,
    unfinished_exercise_in_output,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = [exercise.name for exercise in EXERCISES]
RAISED = re.compile(r'NotImplementedError\(\s*"Exercise (\w+): ')


def message(name):
    return f"Exercise {name}: not written yet (the comment above says what to write)"


def test_the_innermost_exercise_message_is_found_through_re_raised_errors():
    try:
        try:
            raise NotImplementedError(message("loss"))
        except NotImplementedError as inner:
            raise NotImplementedError(f"in user code:\n\n  \x1b[1m{inner}\x1b[0m") from inner
    except NotImplementedError as outer:
        assert unfinished_exercise(outer) == message("loss")


def test_other_errors_are_not_unfinished_exercises():
    assert unfinished_exercise(ValueError(message("loss"))) is None
    assert unfinished_exercise(NotImplementedError("Exercise loss: a message of mine")) is None
    assert unfinished_exercise(None) is None
    assert unfinished_exercise_in_output("AssertionError: 2 != 3") is None


@pytest.mark.parametrize(
    "output",
    [
        "Traceback ...\nNotImplementedError: {message}\n",
        "...Error: Exception encountered when calling X.call().\\n\\n\x1b[1m{message}\x1b[0m')",
    ],
    ids=["stderr", "truncated-repr-in-an-assertion"],
)
def test_an_exercise_message_is_found_in_a_subprocess_output(output):
    text = output.format(message=message("model"))
    assert unfinished_exercise_in_output(text) == message("model")


@pytest.mark.parametrize(
    "outcomes, status",
    [
        (["passed", "passed"], "done"),
        (["passed", "xfailed:loss"], "to do"),
        (["xfailed:model", "xfailed:dense_layer"], "waits for dense_layer, model"),
        (["failed", "xfailed:loss"], "failing"),
        ([], "no test found"),
    ],
)
def test_status_of_an_exercise_comes_from_its_deciding_tests(outcomes, status):
    assert status_of("loss", outcomes) == status


def test_a_failure_is_blamed_on_the_first_earlier_exercise_that_fails():
    # A wrong metric fails the train step's evaluation test too: the step waits for the metric.
    assert status_of("train_step", ["passed", "failed"], earlier=("metric",)) == (
        "waits for metric"
    )
    assert status_of("train_step", ["passed", "failed"]) == "failing"


def test_a_failure_is_blamed_only_on_an_earlier_exercise_whose_code_its_tests_run():
    constraint = "tests/components/test_constraints.py::test_positive_weights_matches_hand"
    dense = "tests/components/test_layers.py::test_custom_dense_matches_hand_computed_values"
    gradient = "tests/test_autodiff.py::test_stable_softplus_keeps_the_tiny_values"
    outcomes = fake_outcomes(
        {constraint: ("failed", "x"), dense: ("failed", "y"), gradient: ("failed", "z")}
    )
    status = {exercise.name: status for exercise, status, _, _ in statuses_of(outcomes)}
    assert status["constraint"] == "failing"
    assert status["dense_layer"] == "waits for constraint"  # its tests build constrained layers
    assert status["custom_gradient"] == "failing"  # no constraint in softplus: its own bug


def test_a_test_stopped_by_a_later_exercise_does_not_decide_an_earlier_one():
    assert status_of("dense_layer", ["passed", "xfailed:model"]) == "done"


def fake_outcomes(results):
    """Outcomes as pytest would record them: {nodeid: outcome or (failed, message)}."""
    outcomes = Outcomes()
    for nodeid, result in results.items():
        if isinstance(result, tuple):
            outcomes.by_test[nodeid], outcomes.failures[nodeid] = "failed", result[1]
        else:
            outcomes.by_test[nodeid] = result
    return outcomes


def test_rows_count_tests_and_each_exercise_done_earns_its_points_with_the_reason_of_a_failure():
    metric_test = "tests/components/test_metrics.py::test_streaming_mae_is_exact_over_uneven"
    outcomes = fake_outcomes(
        {
            "tests/components/test_losses.py::test_huber_matches_hand_computed_values": "passed",
            metric_test: ("failed", "assert 2.5 == 2.0"),
            "tests/loop/test_trainer.py::test_the_step_runs_the_model_in_training_mode": (
                "failed",
                "assert 0 > 0",
            ),
        }
    )
    rows = {exercise.name: row for exercise, *row in statuses_of(outcomes)}
    assert rows["loss"] == ["done", 1, 1]
    assert rows["metric"] == ["failing", 0, 1]
    assert rows["train_step"][0] == "waits for metric"  # the first earlier one failing
    found = {grade.name: grade for grade in grades(statuses_of(outcomes), outcomes)}
    assert sum(grade.points for grade in found.values()) == 1
    assert (found["loss"].points, found["metric"].points, found["train_step"].points) == (1, 0, 0)
    assert found["metric"].max_points == 1
    assert found["metric"].reason == f"{metric_test}: assert 2.5 == 2.0"
    assert found["train_step"].status == "waits for metric"


def test_each_file_of_hidden_tests_is_one_hidden_item_after_the_exercises():
    hidden = "tests/hidden/test_teacher.py::test_{}"
    outcomes = fake_outcomes(
        {
            hidden.format("a"): "passed",
            hidden.format("b"): ("failed", "assert 3 == 4"),
            "tests/hidden/test_other.py::test_c": "passed",
        }
    )
    found = grades(statuses_of(outcomes), outcomes)
    assert [grade.name for grade in found[len(EXERCISES) :]] == [
        "hidden: test_other.py",
        "hidden: test_teacher.py",
    ]
    other, teacher = found[len(EXERCISES) :]
    assert (other.hidden, other.points, other.status) == (True, 1, "done")
    assert (teacher.points, teacher.status, teacher.passed, teacher.total) == (0, "failing", 1, 2)
    assert teacher.reason == f"{hidden.format('b')}: assert 3 == 4"


def test_exercises_have_unique_names_and_every_deciding_test_exists():
    assert len(set(NAMES)) == len(NAMES)
    for exercise in EXERCISES:
        for test in exercise.tests:
            path, _, name = test.partition("::")
            name = name.split("[")[0]
            assert (ROOT / path).is_file(), test
            if name:
                tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
                assert name in {
                    node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                }, test
            assert deciding_exercise(test) is exercise


def test_every_exercise_left_in_the_source_is_in_the_table():
    source = Path(package.__file__).parent
    found = {
        name for path in source.rglob("*.py") for name in RAISED.findall(path.read_text("utf-8"))
    }
    assert found <= set(NAMES)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("{{ cookiecutter.package_name }}.tasks.base.Task.train_step", "train_step"),
        ("{{ cookiecutter.package_name }}.models.residual_regressor.ResidualRegressor.call", "model"),
    ],
    ids=["train_step", "model"],
)
def test_training_with_an_unfinished_exercise_is_one_line_and_writes_nothing(
    tmp_path, capsys, target, name
):
    from unittest import mock

    from {{ cookiecutter.package_name }}.cli import run
    from {{ cookiecutter.package_name }}.train import train

    run_dir = tmp_path / "run"
    # autospec keeps the signature Keras inspects; the body is an unfinished exercise's
    with mock.patch(target, autospec=True, side_effect=NotImplementedError(message(name))):
        code = run("train", train, [f"run_dir={run_dir}", "task=regression", "train.steps=10"])
    err = capsys.readouterr().err
    assert code == 2
    # the first unfinished exercise training meets: this one, or an earlier one (exercises kit)
    assert re.fullmatch(r"error: Exercise \w+: not written yet \([^)]*\); `make check` .*\n", err)
    assert "\x1b[" not in err
    assert not run_dir.exists()


def copy_of_the_project(tmp_path):
    import shutil

    project = tmp_path / "project"
    for part in ("src", "tests"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project)
    return project


def check(project, *args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(project / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", f"{package.__name__}.check", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)


def test_check_name_grades_one_exercise_and_a_failure_shows_the_numbers(tmp_path):
    project = copy_of_the_project(tmp_path)
    source = project / "src" / package.__name__ / "components" / "regularizers.py"
    text = source.read_text(encoding="utf-8")
    done = check(project, "regularizer")
    if "factor * ops.sum(ops.abs(weights))" not in text:  # the exercises kit: not written yet
        assert done.returncode == 1 and done.stdout.startswith("regularizer: to do (")
        return
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(r"regularizer: done \((\d+) of \1 tests pass\)\n", done.stdout), done.stdout
    source.write_text(text.replace("ops.abs(weights)", "ops.square(weights)"), encoding="utf-8")
    failing = check(project, "regularizer", "--json", str(tmp_path / "results.json"))
    assert failing.returncode == 1
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("regularizer", 0.0, 1.0)
    ]
    lines = failing.stdout.splitlines()
    assert re.match(r"regularizer: failing \(\d+ of \d+ tests pass\)", lines[0]), lines
    assert lines[1].strip().startswith("tests/components/test_regularizers.py::")
    assert re.search(r"\d\.\d", lines[2]), lines[2]  # expected and got, not just "assert"


def test_reset_keeps_a_copy_of_what_it_replaces_and_says_where(tmp_path):
    import subprocess
    import sys

    project = copy_of_the_project(tmp_path)
    losses = project / "src" / package.__name__ / "components" / "losses.py"
    before = losses.read_text(encoding="utf-8")
    script = project / "src" / package.__name__ / "check.py"  # stdlib only: no install
    done = subprocess.run(
        [sys.executable, str(script), "--reset", "loss"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(
        rf"reset src/{package.__name__}/components/losses.py \(what it held: (\S+)\)\n",
        done.stdout,
    )
    assert match, done.stdout
    assert (project / match[1]).read_text(encoding="utf-8") == before
    assert "not written yet" in losses.read_text(encoding="utf-8")
