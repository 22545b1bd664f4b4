"""The teaching kits: an exercises bake whose tests turn green as the exercises are written, its
grader and autograder bundles; and a research bake (`starter_kit=none`) that holds none of it.

The kits are baked with the same answers; the solutions kit is the source of truth, so copying
its `src/` over the exercises kit must finish every exercise.
"""

import ast
import importlib.util
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from .conftest import install, run

PACKAGE = "custom_tf_project"
RAISED = re.compile(r'raise NotImplementedError\(\s*"Exercise (\w+): ')
TABLE_NAME = re.compile(r'Exercise\(\s*"(\w+)"')
MARKER = re.compile(r"#\s*exercise (begin|end)")
BRIEF = re.compile(r"Exercise `\w+`")
# What only a teaching kit holds (hooks/post_gen_project.py removes it from a research bake).
TEACHING = {
    f"src/{PACKAGE}/check.py",
    f"src/{PACKAGE}/grading.py",
    f"src/{PACKAGE}/tensors.py",
    f"src/{PACKAGE}/autodiff.py",
    "tests/test_check.py",
    "tests/test_grading.py",
    "tests/test_mutants.py",
    "tests/test_tensors.py",
    "tests/test_autodiff.py",
    "tools/mutants.py",
    "tools/autograders.py",
    "tools/autograder.py",
    "docs/teaching.md",
}
# Classroom 50's published schema of result.json: foundation50/classroom50,
# schemas/result-v1.schema.json at commit 6e593c79b87c99f94fec2ae0badadba761360516.
CLASSROOM50_SCHEMA = Path(__file__).parent / "data" / "classroom50-result-v1.schema.json"
# What Classroom 50's runner sets for autograder.py (its cli/gh-teacher/embed/autograder.py).
CLASSROOM50_RUNNER = {
    "CLASSROOM": "ml-101",
    "ASSIGNMENT": "chapter-3",
    "USERNAME": "ada",
    "SUBMISSION_TAG": "submit/2026-12-01T10-00-00Z-abc1234",
    "COMMIT_URL": "https://github.com/ml-101/ml-101-chapter-3-ada/commit/abc1234",
    "RELEASE_URL": "https://github.com/ml-101/ml-101-chapter-3-ada/releases/tag/x",
    "PAGES_BASE_URL": "https://ml-101.github.io/classroom50",
}


@pytest.fixture(scope="module")
def kits(cookies_session):
    """{"none": path, "solutions": path, "exercises": path}, baked with the same names."""
    paths = {}
    for kit in ("none", "solutions", "exercises"):
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


# The per-task tests run on the chapter's task: every task but the GAN trains with the reference
# step, the `train_step` exercise, so an unfinished one stops each task's training tests the same
# way; the components the other tasks build are exercises whose own tests run in every run
# (tests/components). Every task's per-task tests are the research bake's
# (tests/test_baked_projects.py).
EXERCISES_TASK = "regression"


def fast_suite(project):
    """Runs the bake's fast tier, per-task tests on the chapter's task; returns pytest's counts,
    e.g. {"passed": 93, "xfailed": 88}."""
    command = [install(project), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"]
    done = run([*command, f"--task={EXERCISES_TASK}"], cwd=project, timeout=1200)
    summary = done.stdout.strip().splitlines()[-1]
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", summary)}


def files(project):
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())


def test_the_kits_have_the_same_files_but_teaching_ones_and_no_marker_comments(kits):
    research, solutions, exercises = (files(kits[k]) for k in ("none", "solutions", "exercises"))
    workflow = ".github/workflows/grade.yml"  # the students' kit grades each push
    assert solutions == [path for path in exercises if path != workflow]
    assert workflow in exercises and "README.exercises.md" not in solutions
    assert research == [path for path in solutions if path not in TEACHING]
    assert set(solutions) >= TEACHING
    assert not [path for path in exercises if path.startswith(".github/classroom")]
    for kit in kits.values():
        for path, text in sources(kit).items():
            assert not MARKER.search(text), path


def test_a_research_bake_holds_no_exercise_text_grader_or_teaching_command(kits):
    project = kits["none"]
    for path in files(project):
        if path.endswith((".py", ".md", ".toml", ".yml", ".yaml", ".ipynb")) or path == "Makefile":
            text = (project / path).read_text(encoding="utf-8")
            assert not BRIEF.search(text) and "`make check`" not in text, path
            assert f"{PACKAGE}.check" not in text and "unfinished_exercise" not in text, path
    makefile = (project / "Makefile").read_text(encoding="utf-8")
    assert not re.search(r"^(check|mutants|autograders):", makefile, re.MULTILINE)
    assert "hidden_tests" not in (project / ".gitignore").read_text(encoding="utf-8")
    # The solutions kit is the research bake plus the teaching files and the exercises' briefs.
    # (cli.py: its one-line report of an unfinished exercise is a teaching kit's only)
    taught = sources(kits["solutions"])
    for path, text in sources(project).items():
        if not path.endswith("/cli.py"):
            assert text == without_briefs(taught[path]), path


def without_briefs(text):
    """`text` without the comment lines of its exercises' briefs (`# Exercise `NAME`...`)."""
    kept, in_brief = [], False
    for line in text.splitlines(keepends=True):
        comment = line.lstrip().startswith("#")
        in_brief = comment and (in_brief or bool(BRIEF.search(line)))
        if not in_brief:
            kept.append(line)
    return "".join(kept)


def test_the_students_kit_grades_each_push_into_the_job_summary(kits):
    workflow = kits["exercises"] / ".github" / "workflows" / "grade.yml"
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    commands = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    assert f'python -m {PACKAGE}.check --summary "$GITHUB_STEP_SUMMARY"' in commands
    assert not (kits["exercises"] / ".github" / "workflows" / "autograde.yaml").exists()


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
    research = sources(kits["none"])
    changed = sorted(path for path in solutions if solutions[path] != exercises[path])
    assert changed == sorted(path for path, text in exercises.items() if RAISED.search(text))
    for path in changed:  # the docstrings stay; the briefs, in comments, stay too
        assert docstrings(solutions[path]) == docstrings(exercises[path]), path
        if path in research:
            assert docstrings(research[path]) == docstrings(exercises[path]), path
        briefs = [line for line in solutions[path].splitlines() if BRIEF.search(line)]
        assert briefs and all(line in exercises[path].splitlines() for line in briefs), path


def test_every_curated_mutant_applies_exactly_once_to_the_solutions(kits):
    # `make mutants` skips a mutant whose original text is not there (a student's wording);
    # against the reference it must apply, or the curated list has gone stale.
    tools = kits["solutions"] / "tools" / "mutants.py"
    spec = importlib.util.spec_from_file_location("solutions_mutants", tools)
    mutants = importlib.util.module_from_spec(spec)
    sys.modules["solutions_mutants"] = mutants  # a dataclass looks its module up there
    spec.loader.exec_module(mutants)
    assert len(mutants.MUTANTS) >= 60
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
def test_solutions_kit_passes_its_teaching_tests(kits, tmp_path):
    # A research bake, the default, runs the rest of the suite in test_baked_projects.py; the
    # teaching files are what the solutions kit adds to it.
    project = tmp_path / "solutions"
    shutil.copytree(kits["solutions"], project)
    teaching = sorted(path for path in TEACHING if path.startswith("tests/"))
    command = [install(project), "-m", "pytest", "-q", "-p", "no:cacheprovider", *teaching]
    done = run([*command, "tests/test_docstrings.py", "-m", "not slow"], cwd=project)
    assert re.search(r"\d+ passed", done.stdout.strip().splitlines()[-1]), done.stdout[-2000:]


HIDDEN_TEST = """from custom_tf_project.components.losses import huber


def test_huber_of_a_large_error_is_linear():
    assert float(huber([[0.0]], [[3.0]], threshold=1.0)[0]) == 2.5
"""


def python3_on_path(tmp_path):
    """A PATH whose `python3` is this environment's python (it has every dependency)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n', "utf-8")
    (folder / "python3").chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def replace_once(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


# A correct student's own wording of two exercises: the Huber loss through `minimum`, the dense
# layer's bias added by broadcasting inside one expression.
REWORDED = {
    ("losses.py", "ops.mean(ops.where(abs_error < threshold, squared, linear), axis=-1)"): (
        "ops.mean(0.5 * ops.square(ops.minimum(abs_error, threshold))"
        " + threshold * (abs_error - ops.minimum(abs_error, threshold)), axis=-1)"
    ),
    (
        "layers/dense.py",
        "outputs = ops.matmul(inputs, self.kernel)\n"
        "        if self.bias is not None:\n"
        "            outputs = outputs + self.bias\n",
    ): "bias = 0.0 if self.bias is None else self.bias\n"
    "        outputs = inputs @ self.kernel + bias\n",
}


def submission(kits, target, wrong=False):
    """A student's repository: the reference sources in a student's own wording (`REWORDED`);
    `wrong`: a Huber loss quadratic everywhere, a dense bias that starts at ones, and tests
    edited to pass anyway (they must change nothing)."""
    shutil.copytree(kits["exercises"], target)
    shutil.copytree(kits["solutions"] / "src", target / "src", dirs_exist_ok=True)
    components = target / "src" / PACKAGE / "components"
    if not wrong:
        for (file, old), new in REWORDED.items():
            replace_once(components / file, old, new)
    else:
        where = "ops.where(abs_error < threshold, squared, linear)"
        replace_once(components / "losses.py", where, "squared")
        zeros = 'shape=(self.units,), initializer="zeros")'
        replace_once(components / "layers" / "dense.py", zeros, zeros.replace("zeros", "ones"))
        (target / "tests" / "components" / "test_losses.py").write_text("", "utf-8")
        with open(target / "tests" / "conftest.py", "a", encoding="utf-8") as conftest:
            conftest.write("\ncollect_ignore_glob = ['*']\n")
    return target


@pytest.mark.slow
@pytest.mark.minutes(8)
def test_autograder_bundles_grade_the_submitted_source_against_the_teachers_tests(kits, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(kits["exercises"], teacher)
    (teacher / "hidden_tests").mkdir()
    (teacher / "hidden_tests" / "test_teacher.py").write_text(HIDDEN_TEST, encoding="utf-8")
    run(["make", "autograders", f"PYTHON={sys.executable}"], cwd=teacher)
    env = {"PATH": python3_on_path(tmp_path)}

    # Gradescope, a correct submission in its own wording: full marks, the hidden test after
    # the due date.
    root = tmp_path / "autograder"
    with zipfile.ZipFile(teacher / "dist" / "gradescope.zip") as zipped:
        zipped.extractall(root / "source")
    assert {"setup.sh", "run_autograder"} <= {p.name for p in (root / "source").iterdir()}
    submission(kits, root / "submission")
    (root / "results").mkdir()
    command = ["bash", str(root / "source" / "run_autograder")]
    run(command, cwd=root, env={**env, "AUTOGRADER_ROOT": str(root)}, timeout=1500)
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    tests = {test["name"]: test for test in results["tests"]}
    assert results["score"] == 12.0 and len(tests) == 12, results
    assert tests["hidden: test_teacher.py"]["visibility"] == "after_due_date"
    assert all(test["status"] == "passed" for test in tests.values()), results

    # Classroom 50, a wrong loss whose tests were edited to pass: the loss is at 0.
    checkout = submission(kits, tmp_path / "checkout", wrong=True)
    bundle = teacher / "dist" / "classroom50"
    command = [sys.executable, str(bundle / "autograder.py")]
    run(command, cwd=checkout, env={**env, **CLASSROOM50_RUNNER}, timeout=1500)
    result = json.loads((checkout / "result.json").read_text(encoding="utf-8"))
    jsonschema.validate(result, json.loads(CLASSROOM50_SCHEMA.read_text(encoding="utf-8")))
    scores = {test["test-name"]: test["score"] for test in result["tests"]}
    assert scores["loss"] == scores["dense_layer"] == scores["hidden: test_teacher.py"] == 0
    # Blame follows the wrong code: the exercises whose tests build dense layers are right.
    for name in ("activation", "initializer", "regularizer", "constraint", "metric"):
        assert scores[name] == 1, (name, result)
    assert scores["custom_gradient"] == 1, result
    assert result["max-score"] == 12 and result["score"] < 12
    body = (checkout / "release-body.md").read_text(encoding="utf-8")
    assert body.startswith(f"### Grade: {result['score']} / 12") and "| loss | failing |" in body
    assert "| dense_layer | failing |" in body
    assert "waits for regularizer" not in body and "waits for constraint" not in body
