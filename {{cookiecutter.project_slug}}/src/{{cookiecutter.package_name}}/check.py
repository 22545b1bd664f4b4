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

import contextlib
import io
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
    """One exercise: its name, what to write (under `src/<package>/`), the tests that decide it."""

    name: str
    where: str
    tests: tuple[str, ...]


LAYERS = "tests/components/test_layers.py"
MODELS = "tests/test_models.py"
EXERCISES = (
    Exercise(
        "activation",
        "components/activations.py: scaled_softplus",
        ("tests/components/test_activations.py",),
    ),
    Exercise(
        "initializer",
        "components/initializers.py: glorot_normal_gain, GlorotNormalGain.__call__",
        ("tests/components/test_initializers.py",),
    ),
    Exercise(
        "regularizer",
        "components/regularizers.py: l1_penalty",
        ("tests/components/test_regularizers.py::test_l1_penalty_matches_hand_computed_value",),
    ),
    Exercise(
        "constraint",
        "components/constraints.py: positive_weights, PositiveWeights.__call__",
        (
            "tests/components/test_constraints.py"
            "::test_positive_weights_matches_hand_computed_values",
        ),
    ),
    Exercise("loss", "components/losses.py: huber", ("tests/components/test_losses.py",)),
    Exercise(
        "metric",
        "components/metrics.py: StreamingMAE.update_state and .result",
        ("tests/components/test_metrics.py",),
    ),
    Exercise(
        "dense_layer",
        "components/layers/dense.py: CustomDense.build and .call",
        (
            f"{LAYERS}::test_custom_dense_matches_hand_computed_values",
            f"{LAYERS}::test_custom_dense_passes_keras_layer_harness",
        ),
    ),
    Exercise(
        "residual_block",
        "components/layers/residual.py: ResidualBlock.call",
        (
            f"{LAYERS}::test_residual_block_adds_its_inputs_to_the_stack_output",
            f"{LAYERS}::test_residual_block_passes_keras_layer_harness",
        ),
    ),
    Exercise(
        "model",
        "models/residual_regressor.py: ResidualRegressor.call",
        (
            f"{MODELS}::test_model_outputs_one_float32_prediction_per_sample",
            f"{MODELS}::test_reconstruction_tracker_reports_the_added_loss_only_in_training",
        ),
    ),
    Exercise("custom_gradient", "autodiff.py: stable_softplus", ("tests/test_autodiff.py",)),
    Exercise(
        "train_step",
        "loop/trainer.py: Trainer._replica_train_step",
        ("tests/loop/test_trainer.py",),
    ),
)
ORDER = {exercise.name: index for index, exercise in enumerate(EXERCISES)}


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


def status_of(name, outcomes):
    """An exercise's status from its deciding tests' outcomes (`passed`, `xfailed:<name>`...)."""
    if not outcomes:
        return "no test found"
    if "failed" in outcomes:
        return "failing"
    waiting = {outcome.split(":", 1)[1] for outcome in outcomes if outcome.startswith("xfailed:")}
    if name in waiting:
        return "to do"
    if waiting:
        return "waits for " + ", ".join(sorted(waiting, key=lambda n: ORDER.get(n, len(ORDER))))
    return "done"


class Outcomes:
    """A pytest plugin keeping one outcome per test: passed, failed, skipped or xfailed:<name>."""

    def __init__(self):
        self.by_test = {}

    def pytest_runtest_logreport(self, report):
        if report.failed:
            outcome = "failed"
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


def run_deciding_tests():
    """Runs every deciding test in this process; returns (Outcomes, exit code, pytest's output)."""
    import pytest

    outcomes, output = Outcomes(), io.StringIO()
    tests = dict.fromkeys(str(ROOT / test) for exercise in EXERCISES for test in exercise.tests)
    with contextlib.redirect_stdout(output):
        code = pytest.main(
            [*tests, "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)], plugins=[outcomes]
        )
    return outcomes, int(code), output.getvalue()


def table(statuses):
    source = PACKAGE_DIR.relative_to(ROOT).as_posix()
    done = sum(status == "done" for _, status in statuses)
    lines = [
        f"Exercises: {done} of {len(statuses)} done (files under {source}/).",
        "",
        f"  #  {'exercise':<16} {'status':<26} write",
    ]
    for number, (exercise, status) in enumerate(statuses, start=1):
        lines.append(f"{number:>3}  {exercise.name:<16} {status:<26} {exercise.where}")
        lines.append(f"{'':>21} decided by: pytest {' '.join(exercise.tests)}")
    lines.append("")
    for exercise, status in statuses:
        if status == "failing":
            tests = " ".join(exercise.tests)
            lines.append(f"Failing: {exercise.name}: run `pytest {tests}` to read why.")
    to_do = [exercise for exercise, status in statuses if status == "to do"]
    if to_do:
        lines.append(f"Next: {to_do[0].name}: write {to_do[0].where} (its docstring says how).")
    elif done == len(statuses):
        lines.append(f"All {done} exercises are done.")
    return "\n".join(lines)


def main():
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
    outcomes, code, output = run_deciding_tests()
    if code not in (0, 1):  # 0: all passed, 1: some failed; anything else: could not run them
        print(
            output,
            f"error: pytest exited {code} before running the deciding tests",
            sep="\n",
            file=sys.stderr,
        )
        return 2
    statuses = [
        (exercise, status_of(exercise.name, outcomes.of(exercise))) for exercise in EXERCISES
    ]
    print(table(statuses))
    return 1 if any(status == "failing" for _, status in statuses) else 0


if __name__ == "__main__":
    raise SystemExit(main())
