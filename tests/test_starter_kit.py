"""The starter kit: an exercises bake whose tests turn green as the exercises are written.

Both kits are baked with the same answers; the solutions kit is the source of truth, so copying
its `src/` over the exercises kit must finish every exercise.
"""

import ast
import importlib.util
import json
import re
import shutil
import sys

import pytest

from .conftest import install, run

PACKAGE = "custom_tf_project"
RAISED = re.compile(r'raise NotImplementedError\(\s*"Exercise (\w+): ')
TABLE_NAME = re.compile(r'Exercise\(\s*"(\w+)"')
MARKER = re.compile(r"#\s*exercise (begin|end)")


@pytest.fixture(scope="module")
def kits(cookies_session):
    """{"solutions": path, "exercises": path}, baked with the same (default) names."""
    paths = {}
    for kit in ("solutions", "exercises"):
        result = cookies_session.bake(extra_context={"starter_kit": kit})
        assert result.exit_code == 0, result.exception
        paths[kit] = result.project_path
    return paths


def sources(project):
    return {
        path.relative_to(project).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((project / "src").rglob("*.py"))
    }


def docstrings(text):
    nodes = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
    ]
    return [ast.get_docstring(node) for node in nodes if ast.get_docstring(node)]


def fast_suite(project):
    """Runs the bake's fast tier; returns pytest's counts, e.g. {"passed": 93, "xfailed": 88}."""
    done = run(
        [install(project), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=project,
        timeout=1200,
    )
    summary = done.stdout.strip().splitlines()[-1]
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", summary)}


def test_both_kits_have_the_same_files_and_no_marker_comments(kits):
    solutions, exercises = (
        sorted(p.relative_to(kits[k]).as_posix() for p in kits[k].rglob("*"))
        for k in ("solutions", "exercises")
    )
    classroom = ".github/classroom/autograding.json"  # the exercises kit's autograder only
    assert solutions == [path for path in exercises if not path.startswith(".github/classroom")]
    assert classroom in exercises and "README.exercises.md" not in solutions
    for kit in kits.values():
        for path, text in sources(kit).items():
            assert not MARKER.search(text), path


def test_the_classroom_autograder_grades_each_exercise_of_the_check_table_with_check_name(kits):
    texts = sources(kits["exercises"])
    table = TABLE_NAME.findall(texts[f"src/{PACKAGE}/check.py"])
    path = kits["exercises"] / ".github" / "classroom" / "autograding.json"
    tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
    assert [test["run"] for test in tests] == [f"python -m {PACKAGE}.check {n}" for n in table]
    assert [test["name"] for test in tests] == [f"{i} {n}" for i, n in enumerate(table, 1)]
    assert tests[0]["setup"] == "pip install -e '.[dev]'"
    assert all(test["points"] == 1 and test["comparison"] == "included" for test in tests)


def test_solutions_kit_raises_no_exercise(kits):
    for path, text in sources(kits["solutions"]).items():
        assert not RAISED.search(text), path


def test_exercises_kit_raises_every_exercise_of_the_check_table(kits):
    texts = sources(kits["exercises"])
    raised = {name for text in texts.values() for name in RAISED.findall(text)}
    table = TABLE_NAME.findall(texts[f"src/{PACKAGE}/check.py"])
    assert raised == set(table) and len(table) == 11, (raised, table)
    readme = (kits["exercises"] / "README.md").read_text(encoding="utf-8")
    assert "make check" in readme and "## Where each concept lives" in readme
    for name in table:
        assert f"`{name}`" in readme, name


def test_exercises_kit_differs_only_where_the_exercises_are(kits):
    solutions, exercises = sources(kits["solutions"]), sources(kits["exercises"])
    changed = sorted(path for path in solutions if solutions[path] != exercises[path])
    assert changed == sorted(path for path, text in exercises.items() if RAISED.search(text))
    for path in changed:  # the docstrings, with their guidance, stay
        assert docstrings(solutions[path]) == docstrings(exercises[path]), path


def test_every_curated_mutant_applies_exactly_once_to_the_solutions(kits):
    # `make mutants` skips a mutant whose original text is not there (a student's wording);
    # against the reference it must apply, or the curated list has gone stale.
    tools = kits["solutions"] / "tools" / "mutants.py"
    spec = importlib.util.spec_from_file_location("solutions_mutants", tools)
    mutants = importlib.util.module_from_spec(spec)
    sys.modules["solutions_mutants"] = mutants  # a dataclass looks its module up there
    spec.loader.exec_module(mutants)
    assert len(mutants.MUTANTS) >= 58
    stale = [problem for problem in mutants.problems_of(mutants.MUTANTS) if problem]
    assert not stale, stale


def test_check_reset_of_every_exercise_turns_the_solutions_into_the_exercises_kit(kits, tmp_path):
    project = tmp_path / "solutions"
    shutil.copytree(kits["solutions"], project)
    check = project / "src" / PACKAGE / "check.py"  # stdlib only: runs as a script, no install
    names = TABLE_NAME.findall(check.read_text(encoding="utf-8"))
    for name in names:
        done = run([sys.executable, str(check), "--reset", name], cwd=project)
        assert done.stdout.startswith("reset src/"), done.stdout
    assert sources(project) == sources(kits["exercises"])
    hint = run([sys.executable, str(check), "--hint", "loss"], cwd=project).stdout
    assert hint.startswith("loss (components/losses.py: huber): ") and "t = 2" in hint


@pytest.mark.slow
@pytest.mark.minutes(3)
def test_exercises_suite_reports_expected_failures_and_no_error(kits, tmp_path):
    project = tmp_path / "exercises"
    shutil.copytree(kits["exercises"], project)  # the baked one stays as baked
    counts = fast_suite(project)
    assert counts.get("xfailed", 0) > 0 and counts.get("passed", 0) > 0, counts
    assert not {"failed", "error", "errors"} & set(counts), counts
    check = run([install(project), "-m", f"{PACKAGE}.check"], cwd=project)
    assert "Exercises: 0 of 11 done" in check.stdout, check.stdout
    assert "Next: activation" in check.stdout, check.stdout


@pytest.mark.slow
@pytest.mark.minutes(3)
def test_solutions_src_over_the_exercises_kit_passes_everything(kits, tmp_path):
    project = tmp_path / "finished"
    shutil.copytree(kits["exercises"], project)
    shutil.copytree(kits["solutions"] / "src", project / "src", dirs_exist_ok=True)
    # The same sources and tests as the solutions kit, whose whole suite passes in
    # test_baked_projects.py: running it a second time here would prove nothing more.
    assert sources(project) == sources(kits["solutions"])
    tests = {p.relative_to(project) for p in (project / "tests").rglob("*.py")}
    for path in tests:
        assert (project / path).read_bytes() == (kits["solutions"] / path).read_bytes(), path
    check = run([install(project), "-m", f"{PACKAGE}.check"], cwd=project)
    assert "All 11 exercises are done." in check.stdout, check.stdout
