"""The progress command's pieces: exercise messages, statuses and the tests it names."""

import ast
import re
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.check import (
    EXERCISES,
    deciding_exercise,
    status_of,
    unfinished_exercise,
    unfinished_exercise_in_output,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = [exercise.name for exercise in EXERCISES]
RAISED = re.compile(r'NotImplementedError\(\s*"Exercise (\w+): ')


def message(name):
    return f"Exercise {name}: not written yet (see its docstring)"


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


def test_exercises_have_unique_names_and_every_deciding_test_exists():
    assert len(set(NAMES)) == len(NAMES)
    for exercise in EXERCISES:
        for test in exercise.tests:
            path, _, name = test.partition("::")
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
