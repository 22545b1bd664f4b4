"""The progress command's pieces: exercise messages, statuses and the tests it names."""

import ast
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.check import (
    EXERCISES,
    MESSAGE,
    deciding_exercise,
    status_of,
    unfinished_exercise,
    unfinished_exercise_in_output,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = [exercise.name for exercise in EXERCISES]


def exercise_error(name):
    return NotImplementedError(f"Exercise {name}: write this body")


def test_the_innermost_exercise_message_is_found_through_re_raised_errors():
    try:
        try:
            raise exercise_error("loss")
        except NotImplementedError as inner:
            raise NotImplementedError(f"in user code:\n\n  \x1b[1m{inner}\x1b[0m") from inner
    except NotImplementedError as outer:
        assert unfinished_exercise(outer) == "Exercise loss: write this body"


def test_other_errors_are_not_unfinished_exercises():
    assert unfinished_exercise(ValueError("Exercise loss: wrong type")) is None
    assert unfinished_exercise(NotImplementedError("not an exercise")) is None
    assert unfinished_exercise(None) is None
    assert unfinished_exercise_in_output("AssertionError: 2 != 3") is None


@pytest.mark.parametrize("traceback", [
    "Traceback ...\nNotImplementedError: {error}\n",
    "E   Traceback ...\nE   NotImplementedError: Exception encountered when calling X.call().\n"
    "E   \nE   \x1b[1m{error}\x1b[0m\n",
], ids=["plain", "keras-in-assertion"])
def test_an_exercise_message_is_found_in_a_printed_traceback(traceback):
    text = traceback.format(error=exercise_error("model"))
    assert unfinished_exercise_in_output(text) == "Exercise model: write this body"
    assert unfinished_exercise_in_output(text.replace("NotImplementedError: ", "")) is None


@pytest.mark.parametrize("outcomes, status", [
    (["passed", "passed"], "done"),
    (["passed", "xfailed:loss"], "to do"),
    (["xfailed:model", "xfailed:dense_layer"], "waits for dense_layer, model"),
    (["failed", "xfailed:loss"], "failing"),
    ([], "no test found"),
])
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
                assert name in {node.name for node in tree.body
                                if isinstance(node, ast.FunctionDef)}, test
            assert deciding_exercise(test) is exercise


def test_every_exercise_left_in_the_source_is_in_the_table():
    source = Path(package.__file__).parent
    found = {match["name"] for path in source.rglob("*.py")
             for match in MESSAGE.finditer(path.read_text(encoding="utf-8"))
             if path.name != "check.py"}
    assert found <= set(NAMES)
