"""Progress through the exercises: each one, done or not, and the tests that decide it.

``python -m {{ cookiecutter.package_name }}.check`` (or ``make check``) runs the deciding tests of
every exercise in one pytest session and prints a row per exercise, in the order to do them:
``done``; ``to do``; ``waits for <exercise>`` (its tests also need an earlier exercise); or
``failing`` (written, but a deciding test fails: run it to read why). It exits 1 if a deciding
test fails, else 0. In the solutions kit every exercise is done.

An unfinished exercise raises ``NotImplementedError("Exercise <name>: not written yet (...)")``
and `tests/conftest.py` reports every test it stops as an expected failure (xfail), not an error:

>>> unfinished_exercise(NotImplementedError("Exercise loss: not written yet (see huber)"))
'Exercise loss: not written yet (see huber)'
>>> status_of("model", ["passed", "xfailed:dense_layer"])
'waits for dense_layer'
"""

import argparse
import contextlib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parents[1]  # src/<package>/check.py -> the project
# The message of an unfinished exercise (hooks/post_gen_project.py of the template writes it).
MESSAGE = re.compile(r"Exercise (?P<name>\w+): not written yet \([^)\n]*\)")


@dataclass(frozen=True)
class Exercise:
    """One exercise: its name, what to write (under `src/<package>/`), the tests that decide it,
    and the points it is worth (`grading.py` writes them for each platform)."""

    name: str
    where: str
    tests: tuple[str, ...]
    points: int = 1

    def functions(self) -> list[tuple[str, str]]:
        """`[(file, "Class.method" or "function")]` that the exercise writes.

        >>> metric = Exercise(
        ...     name="metric", where="metrics.py: Mean.update_state and .result", tests=()
        ... )
        >>> metric.functions()
        [('metrics.py', 'Mean.update_state'), ('metrics.py', 'Mean.result')]
        """
        path, _, names = self.where.partition(": ")
        found, owner = [], ""
        for name in re.split(r",\s*|\s+and\s+", names):
            name = name.strip()
            if name.startswith("."):
                name = owner + name
            owner = name.split(".")[0] if "." in name else owner
            found.append((path, name))
        return found


LAYERS = "tests/components/test_layers.py"
MODELS = "tests/test_models.py"
CONTROLLER = "tests/loop/test_controller.py"
# The task the per-task tests grade on: the one of the chapter's model (the `model` exercise).
# The other tasks run the same step; grading each would multiply the time and decide nothing
# more (see docs/teaching.md, the platforms' limits).
GRADED_TASK = "regression"
PACKAGE = "{{ cookiecutter.package_name }}"
DOCTESTS = "tests/test_docstrings.py::test_docstring_examples_run[" + PACKAGE + ".{}]"
# Every test that exercises an exercise decides it: its own file, its docstring's examples, and
# for the train step the loop, precision and distribution tests that run it.
EXERCISES = (
    Exercise(
        "activation",
        "components/activations.py: scaled_softplus",
        ("tests/components/test_activations.py", DOCTESTS.format("components.activations")),
    ),
    Exercise(
        "initializer",
        "components/initializers.py: glorot_normal_gain, GlorotNormalGain.__call__",
        ("tests/components/test_initializers.py", DOCTESTS.format("components.initializers")),
    ),
    Exercise(
        "regularizer",
        "components/regularizers.py: l1_penalty",
        ("tests/components/test_regularizers.py", DOCTESTS.format("components.regularizers")),
    ),
    Exercise(
        "constraint",
        "components/constraints.py: positive_weights, PositiveWeights.__call__",
        ("tests/components/test_constraints.py", DOCTESTS.format("components.constraints")),
    ),
    Exercise(
        "loss",
        "components/losses.py: huber",
        ("tests/components/test_losses.py", DOCTESTS.format("components.losses")),
    ),
    Exercise(
        "metric",
        "components/metrics.py: StreamingMAE.update_state and .result",
        ("tests/components/test_metrics.py", DOCTESTS.format("components.metrics")),
    ),
    Exercise(
        "dense_layer",
        "components/layers/dense.py: CustomDense.build and .call",
        (
            f"{LAYERS}::test_custom_dense_matches_hand_computed_values",
            f"{LAYERS}::test_custom_dense_uses_its_initializer_and_regularizes_only_its_kernel",
            f"{LAYERS}::test_custom_dense_passes_keras_layer_harness",
            f"{LAYERS}::test_constrained_custom_dense_passes_keras_layer_harness",
            f"{LAYERS}::test_custom_dense_keeps_its_kernel_constraint_through_an_optimizer_step",
            f"{LAYERS}::test_custom_dense_maps_the_last_axis_of_inputs_of_any_rank",
            f"{LAYERS}::test_custom_dense_without_bias_has_no_bias_and_adds_nothing",
            f"{LAYERS}::test_custom_dense_refuses_inputs_of_another_size_once_built",
            f"{LAYERS}::test_custom_dense_rebuilt_from_its_config_keeps_bias_choice_and_constraint",
            DOCTESTS.format("components.layers.dense"),
        ),
    ),
    Exercise(
        "residual_block",
        "components/layers/residual.py: ResidualBlock.call",
        (
            f"{LAYERS}::test_residual_block_adds_its_inputs_to_the_stack_output",
            f"{LAYERS}::test_residual_block_of_two_layers_matches_a_hand_computation",
            f"{LAYERS}::test_residual_block_passes_keras_layer_harness",
            f"{LAYERS}::test_residual_block_adds_the_skip_after_the_activation_not_before",
            f"{LAYERS}::test_residual_block_rebuilt_from_its_config_draws_the_same_kernels",
            DOCTESTS.format("components.layers.residual"),
        ),
    ),
    Exercise(
        "model",
        "models/residual_regressor.py: ResidualRegressor.call",
        (MODELS, DOCTESTS.format("models.residual_regressor")),
    ),
    Exercise(
        "custom_gradient",
        "autodiff.py: stable_softplus",
        ("tests/test_autodiff.py", DOCTESTS.format("autodiff")),
    ),
    Exercise(
        "train_step",
        "tasks/base.py: Task.train_step",
        (
            "tests/loop/test_trainer.py",
            "tests/loop/test_distribute.py",
            "tests/loop/test_precision.py",
            # the loop's own tests (resume, schedules, signals) pass whatever the step computes
            f"{CONTROLLER}::test_training_lowers_the_loss_and_writes_every_artifact",
            f"{CONTROLLER}::test_model_metrics_are_logged_beside_the_task_metrics",
            f"{CONTROLLER}::test_debug_overfit_drives_the_training_loss_far_down_on_four_batches",
        ),
    ),
)
ORDER = {exercise.name: index for index, exercise in enumerate(EXERCISES)}
# The teacher's tests that students never see: the autograder bundles put them here (see
# tools/autograders.py); each file is one graded item worth HIDDEN_POINTS.
HIDDEN = ROOT / "tests" / "hidden"
HIDDEN_POINTS = 1
# The earlier exercises whose code the tests of an exercise run (directly; `uses` follows them
# through): a failure of those tests is blamed on the first of them that fails its own tests.
USES = {
    "dense_layer": ("activation", "initializer", "regularizer", "constraint"),  # not the reverse
    "residual_block": ("dense_layer",),
    "model": ("loss", "residual_block"),
    "train_step": ("model", "metric"),
}


def uses(name):
    """Every earlier exercise whose code the tests of `name` run.

    >>> sorted(uses("residual_block"))
    ['activation', 'constraint', 'dense_layer', 'initializer', 'regularizer']
    >>> uses("custom_gradient")
    set()
    """
    found, todo = set(), list(USES.get(name, ()))
    while todo:
        other = todo.pop()
        if other not in found:
            found.add(other)
            todo.extend(USES.get(other, ()))
    return found


# The second level of help (`check --hint NAME`): how, for students who are stuck. The docstring
# of each exercise says what to achieve; these say which calls get there.
HINTS = {
    "activation": "`ops.softplus(scale * x) / scale`; convert `x` with `ops.convert_to_tensor` "
    "first so plain floats work.",
    "initializer": "`keras.random.normal(shape, stddev=..., dtype=dtype, seed=...)`; the class "
    "passes `seed=self._draw_seed` (drawn once in `__init__`), never `self.seed`, which is None "
    "when unseeded and would give new values at every call.",
    "regularizer": "`factor * ops.sum(ops.abs(weights))`: a sum, not a mean.",
    "constraint": "`ops.maximum(weights, min_value)` clips; `ops.abs` would flip signs instead.",
    "loss": "`e = y_true - y_pred`; `ops.where(ops.abs(e) < t, 0.5 * e**2, t * ops.abs(e) - "
    "0.5 * t**2)`, then `ops.mean(..., axis=-1)`. Check both regions with t = 2.",
    "metric": "`self.total.assign_add(ops.sum(per_sample * weights))` and "
    "`self.count.assign_add(ops.sum(weights))`: count samples, not batches; "
    "`ops.divide_no_nan` in `result`.",
    "dense_layer": "`self.add_weight(name='kernel', shape=(input_dim, self.units), "
    "initializer=..., regularizer=..., constraint=...)`: pass all three, or the layer silently "
    "drops one; `call` is `self.activation(inputs @ kernel + bias)`.",
    "residual_block": "`outputs = inputs`, then `outputs = layer(outputs)` for each layer, "
    "then `return inputs + outputs`: one skip around the whole stack.",
    "model": "projection, noise (pass `training`), blocks, output; the auxiliary loss is "
    "`self.reconstruction_weight * ops.mean(ops.square(recon - x))` with `recon` and `x` cast "
    "to float32 before the subtraction; `self.add_loss(...)`; update the tracker only when "
    "`training`.",
    "custom_gradient": "forward: `log1p(exp(-|z|)) + max(z, 0)`; the gradient function returns "
    "`upstream * sigmoid(z)`, written as `1 - 1 / (1 + exp(z))`, which stays finite at z = 100.",
    "train_step": "inside the tape: `loop.compute_average_loss(per_example)` (the global "
    "batch's mean) plus `loop.scale_regularization_loss(own)`; then "
    "`loop.apply_gradients(tape, loss)`; log `per_example + own`, unscaled. Compare with "
    "`expected_sgd_change` in tests/loop/test_trainer.py.",
}


def unfinished_exercise(error):
    """The message of the unfinished exercise behind `error` (or its causes), else None.

    TensorFlow and Keras re-raise an error from inside a layer or a `tf.function` with more
    text around it; the innermost message is the exercise's own.
    """
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        match = MESSAGE.search(str(error)) if isinstance(error, NotImplementedError) else None
        found = match.group(0) if match else found
        error = error.__cause__ or error.__context__
    return found


def unfinished_exercise_in_output(text):
    """The message of an unfinished exercise in `text` (a subprocess's stderr), else None."""
    match = MESSAGE.search(text)
    return match.group(0) if match else None


def deciding_exercise(nodeid):
    """The exercise that the test `nodeid` (relative to the project) decides, else None."""
    for exercise in EXERCISES:
        if any(
            nodeid == test or nodeid.startswith((f"{test}::", f"{test}["))
            for test in exercise.tests
        ):
            return exercise
    return None


def status_of(name, outcomes, earlier=()):
    """An exercise's status from its deciding tests' outcomes (`passed`, `xfailed:<name>`...).

    `earlier` holds the exercises before it (in the table's order) whose own tests fail: a
    failure here is blamed on the first of them ("train_step waits for metric": a wrong metric
    also fails the step's evaluation test). An unfinished exercise stops tests (xfail) instead
    of failing them. A test stopped by a later exercise does not decide an earlier one.
    """
    if not outcomes:
        return "no test found"
    position = ORDER.get(name, len(ORDER))

    def stopped_by(outcome):
        return outcome.split(":", 1)[1] if outcome.startswith("xfailed:") else None

    later = [o for o in outcomes if ORDER.get(stopped_by(o) or "", -1) > position]
    deciding = [o for o in outcomes if o not in later] or later
    waiting = {stopped_by(o) for o in deciding if stopped_by(o)}
    if "failed" in deciding:
        return f"waits for {earlier[0]}" if earlier else "failing"
    if name in waiting:
        return "to do"
    if waiting:
        return "waits for " + ", ".join(sorted(waiting, key=lambda n: ORDER.get(n, len(ORDER))))
    return "done"


# Lines of an assertion message that hold the numbers: numpy's mismatch summary, the values at
# each index and its arrays (`x:`/`y:` before numpy 2, `ACTUAL:`/`DESIRED:` since), pytest's
# "where" and approx lines.
NUMBERS = re.compile(
    r"Mismatch|Max (absolute|relative)|ACTUAL|DESIRED|^\s*\[[\d, ]+\]:|^\s*[xy]: |^\s*[+-] "
    r"|approx|where "
)


def failure_line(message):
    """One line saying what failed, with the numbers (expected and got) where the assertion
    shows them.

    >>> line = failure_line("AssertionError: \\nNot equal to tolerance rtol=1e-05\\n\\n"
    ...     "Mismatched elements: 1 / 2 (50%)\\n x: array([1. , 2.5])\\n y: array([1., 2.])")
    >>> print(*line.split(" | "), sep="\\n")
    AssertionError:
    Not equal to tolerance rtol=1e-05
    Mismatched elements: 1 / 2 (50%)
    x: array([1. , 2.5])
    y: array([1., 2.])
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    shown = lines[:2] + [line for line in lines[2:] if NUMBERS.search(line)][:8]
    if "in user code" in lines[0] and lines[-1] not in shown:  # TensorFlow's own message is last
        shown.append(lines[-1])
    return " | ".join(shown)


class Outcomes:
    """A pytest plugin keeping one outcome per test: passed, failed, skipped or xfailed:<name>."""

    def __init__(self):
        self.by_test = {}
        self.failures = {}  # nodeid -> the first line of what failed

    def pytest_runtest_logreport(self, report):
        if report.failed:
            outcome = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash else str(report.longrepr)
            self.failures.setdefault(report.nodeid, failure_line(message))
        elif report.skipped and hasattr(report, "wasxfail"):
            match = MESSAGE.match(report.wasxfail)
            outcome = f"xfailed:{match['name'] if match else '?'}"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        if self.by_test.get(report.nodeid) != "failed":
            self.by_test[report.nodeid] = outcome

    def of(self, exercise):
        return [
            outcome
            for nodeid, outcome in self.by_test.items()
            if deciding_exercise(nodeid) == exercise
        ]

    def failed_tests(self, exercise):
        return [
            (nodeid, message)
            for nodeid, message in self.failures.items()
            if deciding_exercise(nodeid) == exercise
        ]


def run_deciding_tests(exercises=EXERCISES, hidden=False):
    """Runs the deciding tests of `exercises` (default: all), and with `hidden` the teacher's
    hidden tests, in this process; returns (Outcomes, exit code, pytest's output)."""
    import pytest

    outcomes, output = Outcomes(), io.StringIO()
    # The doctests are one parametrized test: select the file, match the ids afterwards.
    selected = dict.fromkeys(
        test.split("::")[0] if "[" in test else test
        for exercise in exercises
        for test in exercise.tests
    )
    arguments = [str(ROOT / test) for test in selected]
    if hidden and HIDDEN.is_dir():
        arguments.append(str(HIDDEN))
    with contextlib.redirect_stdout(output):
        code = pytest.main(
            [*arguments, "-q", "-m", "not slow", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
            + [f"--task={GRADED_TASK}"],
            plugins=[outcomes],
        )
    return outcomes, int(code), output.getvalue()


def statuses_of(outcomes):
    """[(exercise, status, passed, total)] in the table's order, blaming failures on the first
    earlier exercise whose tests fail and whose code these tests run (`uses`): a wrong
    constraint makes the dense layer wait for it, never the custom gradient."""
    rows, failing = [], []
    for exercise in EXERCISES:
        results = outcomes.of(exercise)
        blamed = tuple(name for name in failing if name in uses(exercise.name))
        status = status_of(exercise.name, results, blamed)
        rows.append((exercise, status, results.count("passed"), len(results)))
        if "failed" in results:
            failing.append(exercise.name)
    return rows


def table(rows, outcomes=None):
    source = PACKAGE_DIR.relative_to(ROOT).as_posix()
    done = sum(status == "done" for _, status, _, _ in rows)
    lines = [
        f"Exercises: {done} of {len(rows)} done (files under {source}/).",
        "",
        f"  #  {'exercise':<16} {'status':<26} {'tests':>7}  write",
    ]
    for number, (exercise, status, passed, total) in enumerate(rows, start=1):
        count = f"{passed}/{total}"
        lines.append(f"{number:>3}  {exercise.name:<16} {status:<26} {count:>7}  {exercise.where}")
    lines.append("")
    for exercise, status, _, _ in rows:
        if status == "failing":
            lines.append(f"Failing: {exercise.name}:")
            failed = outcomes.failed_tests(exercise) if outcomes else []
            for nodeid, message in failed[:3]:
                lines.append(f"  {nodeid}")
                lines.append(f"    {message[:600]}")
            first = failed[0][0] if failed else exercise.tests[0]
            lines.append(f"  run `pytest '{first}'` to read the whole story.")
    to_do = [exercise for exercise, status, _, _ in rows if status == "to do"]
    if to_do:
        lines.append(f"Next: {to_do[0].name}: write {to_do[0].where} (its brief comment says how).")
    elif done == len(rows):
        lines.append(f"All {done} exercises are done.")
    return "\n".join(lines)


def grades(rows, outcomes):
    """The grading outcome: a `grading.Grade` per exercise of `rows` (its points when done, the
    first failing test's reason), then one per file of hidden tests that ran."""
    from {{ cookiecutter.package_name }}.grading import Grade

    found = []
    for exercise, status, passed, total in rows:
        failures = outcomes.failed_tests(exercise)
        reason = f"{failures[0][0]}: {failures[0][1][:600]}" if failures else ""
        points = exercise.points if status == "done" else 0
        found.append(Grade(exercise.name, points, exercise.points, status, passed, total, reason))
    hidden = {}
    for nodeid, outcome in outcomes.by_test.items():
        if nodeid.startswith("tests/hidden/"):
            hidden.setdefault(nodeid.split("::")[0], []).append((nodeid, outcome))
    for path, results in sorted(hidden.items()):
        outcomes_here = [outcome for _, outcome in results]
        waiting = [o.split(":", 1)[1] for o in outcomes_here if o.startswith("xfailed:")]
        failed = [nodeid for nodeid, outcome in results if outcome == "failed"]
        status = "failing" if failed else f"waits for {waiting[0]}" if waiting else "done"
        reason = f"{failed[0]}: {outcomes.failures.get(failed[0], '')[:600]}" if failed else ""
        passed = outcomes_here.count("passed")
        points = HIDDEN_POINTS if status == "done" else 0
        name = "hidden: " + path.removeprefix("tests/hidden/")
        found.append(Grade(name, points, HIDDEN_POINTS, status, passed, len(results), reason, True))
    return found


def write_reports(found, gradescope=None, classroom50=None, summary=None):
    """Writes the grading outcome: Gradescope's results.json at `gradescope`; Classroom 50's
    result.json and release-body.md into the folder `classroom50`; the Markdown table appended
    to `summary` (a job summary file)."""
    from {{ cookiecutter.package_name }} import grading

    if gradescope:
        Path(gradescope).parent.mkdir(parents=True, exist_ok=True)
        Path(gradescope).write_text(json.dumps(grading.gradescope(found), indent=2), "utf-8")
    if classroom50:
        folder = Path(classroom50)
        folder.mkdir(parents=True, exist_ok=True)
        result = json.dumps(grading.classroom50(found), indent=2)
        (folder / "result.json").write_text(result + "\n", "utf-8")
        (folder / "release-body.md").write_text(grading.summary(found), "utf-8")
    if summary:
        with open(summary, "a", encoding="utf-8") as file:
            file.write(grading.summary(found))


# Written by the template's post-generation hook above the imports of a file with exercises.
KEEP_IMPORTS = "# ruff: noqa: F401 - the exercises below use these imports\n"


def stub(name):
    return f"Exercise {name}: not written yet (the comment above says what to write)"


def reset(exercise, package_dir=PACKAGE_DIR, keep=None):
    """Replaces the body of every function the exercise writes (after its docstring) by the
    unfinished stub; returns the files changed. Docstrings, signatures and the rest stay.

    With `keep` (a directory), each file is first copied there, under its path below
    `package_dir`, so that nothing written is lost.
    """
    import ast
    import shutil

    changed = []
    for relative, qualified in exercise.functions():
        path = package_dir / relative
        if keep is not None and not (keep / relative).exists():
            (keep / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, keep / relative)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        node = _find(ast.parse("".join(lines)), qualified.split("."))
        body = node.body[1:] if ast.get_docstring(node) else node.body
        first, last = body[0].lineno - 1, body[-1].end_lineno
        brief = f"# Exercise `{exercise.name}`"
        # What comes before the brief comment (an import the body needs) is not the exercise's.
        at = next((i for i in range(first, last) if lines[i].lstrip().startswith(brief)), None)
        if at is not None:
            first = next(i for i in range(at, last) if not lines[i].lstrip().startswith("#"))
        indent = " " * body[-1].col_offset
        raise_line = f'{indent}raise NotImplementedError("{stub(exercise.name)}")\n'
        if len(raise_line) > 101:
            raise_line = (
                f"{indent}raise NotImplementedError(\n"
                f'{indent}    "{stub(exercise.name)}"\n{indent})\n'
            )
        lines = [*lines[:first], raise_line, *lines[last:]]
        if KEEP_IMPORTS not in lines:  # as the exercises kit has it: imports kept for later
            tree = ast.parse("".join(lines))  # the first import statement, past the docstring
            at = next(n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
            lines.insert(at - 1, KEEP_IMPORTS)
        path.write_text("".join(lines), encoding="utf-8")
        if path not in changed:
            changed.append(path)
    return changed


def _find(tree, names):
    import ast

    node = tree
    for name in names:
        node = next(
            child
            for child in node.body
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)) and child.name == name
        )
    return node


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.check",
        description="Runs the tests of every exercise and prints which are done.",
    )
    parser.add_argument(
        "name",
        nargs="?",
        choices=list(ORDER),
        metavar="NAME",
        help="grade this exercise only (exit 0 when it is done)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write Gradescope's results.json")
    parser.add_argument(
        "--classroom50",
        metavar="DIR",
        help="also write Classroom 50's result.json and release-body.md into DIR",
    )
    parser.add_argument(
        "--summary", metavar="PATH", help="also append the grade as a Markdown table to PATH"
    )
    parser.add_argument("--hint", metavar="NAME", choices=list(ORDER), help="how to do NAME")
    parser.add_argument(
        "--reset", metavar="NAME", choices=list(ORDER), help="put NAME's unfinished stub back"
    )
    args = parser.parse_args(argv)
    if args.hint:
        exercise = EXERCISES[ORDER[args.hint]]
        print(f"{exercise.name} ({exercise.where}): {HINTS[exercise.name]}")
        print("  decided by:", *(f"    pytest {test}" for test in exercise.tests), sep="\n")
        return 0
    if args.reset:
        import time

        keep = ROOT / ".check-backups" / time.strftime("%Y%m%d-%H%M%S")
        for path in reset(EXERCISES[ORDER[args.reset]], keep=keep):
            copy = (keep / path.relative_to(PACKAGE_DIR)).relative_to(ROOT).as_posix()
            print(f"reset {path.relative_to(ROOT).as_posix()} (what it held: {copy})")
        return 0
    try:
        import pytest  # noqa: F401
    except ImportError:
        print(
            "error: check runs the tests and needs pytest: pip install -e '.[dev]'", file=sys.stderr
        )
        return 2
    if not (ROOT / "tests").is_dir():
        print(
            f"error: no tests/ in {ROOT}: run check in the project, installed with pip install -e",
            file=sys.stderr,
        )
        return 2
    chosen = [EXERCISES[ORDER[args.name]]] if args.name else EXERCISES
    outcomes, code, output = run_deciding_tests(chosen, hidden=not args.name)
    if code not in (0, 1):  # 0: all passed, 1: some failed; anything else: could not run them
        print(
            output,
            f"error: pytest exited {code} before running the deciding tests",
            sep="\n",
            file=sys.stderr,
        )
        return 2
    rows = statuses_of(outcomes)
    if args.name:
        rows = [rows[ORDER[args.name]]]
    found = grades(rows, outcomes)
    write_reports(found, args.json, args.classroom50, args.summary)
    if args.name:
        exercise, status, passed, total = rows[0]
        print(f"{exercise.name}: {status} ({passed} of {total} tests pass)")
        for nodeid, message in outcomes.failed_tests(exercise)[:3]:
            print(f"  {nodeid}\n    {message[:600]}")
        return 0 if status == "done" else 1
    print(table(rows, outcomes))
    for grade in found[len(rows) :]:
        print(f"Hidden tests {grade.name.removeprefix('hidden: ')}: {grade.status}")
    return 1 if any(status == "failing" for _, status, _, _ in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
