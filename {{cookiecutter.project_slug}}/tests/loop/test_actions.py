"""Actions: the loop's own jobs and the user's, run at their cadence between compiled chunks."""

import json
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from {{ cookiecutter.package_name }}.actions import read_confusion_matrix
from {{ cookiecutter.package_name }}.cli import run
from {{ cookiecutter.package_name }}.loop.actions import Action, next_boundary
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics
from {{ cookiecutter.package_name }}.train import train

# A researcher's own action, in a module of its own outside the package.
USER_ACTION = '''
import json, os
from {{ cookiecutter.package_name }}.loop.actions import Action

class RecordEachCall(Action):
    """Appends what it saw at each call to `path` (one JSON line)."""

    def __init__(self, path, every_steps=25):
        self.path, self.every_steps = path, every_steps

    def __call__(self, run, boundary):
        ckpt = os.path.join(run.run_dir, "checkpoints", f"ckpt-{boundary.step}.index")
        seen = {
            "step": boundary.step,
            "keys": sorted(boundary.logs),
            "saved": boundary.saved,
            "checkpoint_on_disk": os.path.exists(ckpt),
            "chief": run.is_chief,
            "model": type(run.model).__name__,
        }
        with open(self.path, "a") as file:
            file.write(json.dumps(seen) + "\\n")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """`user_actions.RecordEachCall`, importable as a user's module is (on the path)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "user_actions.py").write_text(USER_ACTION)
    monkeypatch.syspath_prepend(str(folder))
    yield "user_actions.RecordEachCall"
    sys.modules.pop("user_actions", None)


def adding(name, target, **arguments):
    """The one override that adds an action: `+actions.<name>={_target_: ..., key: value}`."""
    listed = ", ".join([f"_target_: {target}", *(f"{k}: {v!r}" for k, v in arguments.items())])
    return f"+actions.{name}=" + "{" + listed + "}"


def calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_user_action_added_by_one_override_runs_at_its_cadence_and_sees_step_and_logs(
    make_config, tmp_path, user_module
):
    seen = tmp_path / "seen.jsonl"
    action = adding("mine", user_module, path=str(seen), every_steps=25)
    result = train_and_evaluate(make_config("train.steps=60", action))
    records = calls(seen)
    # every 25 steps and the last step, however spe=5 and the other cadences (10, 20) fall
    assert [r["step"] for r in records] == [25, 50, 60]
    assert records[0]["keys"] == []  # no cadence of the loop's own at 25
    assert {"loss", "steps_per_sec"} <= set(records[1]["keys"])  # step 50: a log step
    assert {"loss", "eval_loss"} <= set(records[2]["keys"])  # the last: logs and evaluation
    # after the checkpoint action: a checkpoint step is on disk when the action runs
    assert [(r["saved"], r["checkpoint_on_disk"]) for r in records] == [
        (False, False),
        (False, False),
        (True, True),
    ]
    assert records[0]["chief"] and records[0]["model"] == "ResidualRegressor"
    assert result["step"] == 60


def test_an_action_cadence_moves_chunk_ends_never_the_result(make_config, tmp_path, user_module):
    """Every 7 steps splits the compiled chunks elsewhere; the weights stay bitwise equal."""
    plain = train_and_evaluate(
        make_config("deterministic=true", "train.steps=40", run_dir=tmp_path / "plain")
    )
    seen = tmp_path / "seen.jsonl"
    action = adding("mine", user_module, path=str(seen), every_steps=7)
    acted = train_and_evaluate(
        make_config("deterministic=true", "train.steps=40", action, run_dir=tmp_path / "acted")
    )
    assert [r["step"] for r in calls(seen)] == [7, 14, 21, 28, 35, 40]
    assert acted["weights_sha256"] == plain["weights_sha256"]
    timeless = [
        [{k: v for k, v in line.items() if k != "steps_per_sec"} for line in read_metrics(str(d))]
        for d in (tmp_path / "plain", tmp_path / "acted")
    ]
    assert timeless[0] == timeless[1]


def test_next_boundary_includes_every_action_cadence(make_config):
    class Every7(Action):
        every_steps = 7

    cfg = make_config("train.steps_per_execution=5", "train.log_every_steps=10")
    ends, step = [], 0
    while step < cfg.train.steps:
        step = next_boundary(step, cfg, [Every7()])
        ends.append(step)
    assert ends == [5, 7, 10, 14, 15, 20, 21, 25, 28, 30, 35, 40]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (
            "{_target_: user_actions.Nowhere}",
            "error: actions.bad: user_actions.Nowhere: ImportError:",
        ),
        (
            "{_target_: user_actions.RecordEachCall, path: x, every: 3}",
            "error: actions.bad: user_actions.RecordEachCall: TypeError:",
        ),
        (
            "{_target_: collections.OrderedDict}",
            "error: actions.bad: collections.OrderedDict is not an Action (subclass "
            "{{ cookiecutter.package_name }}.loop.actions.Action)",
        ),
        (
            "{_target_: user_actions.RecordEachCall, path: x, every_steps: 0}",
            "error: actions.bad.every_steps=0: must be a positive integer or None",
        ),
    ],
    ids=["not-importable", "wrong-argument", "not-an-action", "bad-cadence"],
)
def test_a_bad_action_is_one_line_before_anything_is_written(
    tmp_path, capsys, user_module, spec, expected
):
    run_dir = tmp_path / "never"
    code = run("train", train, [f"run_dir={run_dir}", "train.steps=5", f"+actions.bad={spec}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(expected), err
    assert not run_dir.exists()


def test_the_confusion_matrix_action_is_the_evaluation_and_tensorboard_shows_its_images(
    make_config, tmp_path
):
    cfg = make_config("actions=[confusion_matrix]", task="image_classification")
    result = train_and_evaluate(cfg)
    matrix = np.array(read_confusion_matrix(cfg.run_dir)["rows_true_columns_predicted"])
    assert matrix.shape == (10, 10) and matrix.sum() == cfg.task.test_size
    # the same held-out examples and weights as the evaluation: its accuracy, to float32 rounding
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result["eval_accuracy"], abs=1e-6)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "eval_images"))
    events.Reload()
    assert set(events.Tags()["tensors"]) == {"confusion_matrix", "worst_examples"}
    for tag in ("confusion_matrix", "worst_examples"):
        steps = [event.step for event in events.Tensors(tag)]
        assert steps == [20, 40], tag  # at each evaluation
        png = tf.make_ndarray(events.Tensors(tag)[-1].tensor_proto)[2]
        assert tf.image.decode_png(png).shape[-1] in (3, 4)


def test_a_confusion_matrix_of_a_task_without_classes_is_refused_before_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "never"
    overrides = [f"run_dir={run_dir}", "task=regression", "actions=[confusion_matrix]"]
    code = run("train", train, [*overrides, "train.steps=5"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "error: actions.confusion_matrix: task=regression serves no class_ids, "
        "probabilities: a classifier's task does (task=image_classification)"
    )
    assert not run_dir.exists()
