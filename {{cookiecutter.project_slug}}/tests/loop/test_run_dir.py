"""No accident with a run directory loses work: spelling, moves, a lost pointer, a second
process, a finished run, a full disk, a damaged record."""

import json
import os
import shutil
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.errors import AlreadyDone, Diverged, RunError
from {{ cookiecutter.package_name }}.evaluate import evaluate
from {{ cookiecutter.package_name }}.loop import checkpoints, controller
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics
from {{ cookiecutter.package_name }}.loop.run_dir import RunDirLock


def steps_logged(run_dir):
    return [record["step"] for record in read_metrics(str(run_dir))]


def test_resume_works_whatever_the_spelling_of_run_dir_and_after_a_move(
    make_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    train_and_evaluate(make_config("train.steps=20", run_dir="runs/a"))
    pointer = (tmp_path / "runs/a/checkpoints/checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-20"' in pointer  # relative to its own directory
    absolute = tmp_path / "runs" / "a"
    assert train_and_evaluate(make_config("train.steps=40", run_dir=absolute))["step"] == 40
    shutil.copytree(absolute, tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "runs")
    moved = make_config("train.steps=60", run_dir="../elsewhere")
    assert train_and_evaluate(moved)["step"] == 60
    assert steps_logged(tmp_path / "elsewhere") == [10, 20, 30, 40, 50, 60]
    assert evaluate(make_config(run_dir="../elsewhere"))["step"] == 60
    assert tf.train.latest_checkpoint("../elsewhere/checkpoints").endswith("ckpt-60")


@pytest.mark.parametrize(
    "pointer", [None, "", "garbage: ] not a proto"], ids=["lost", "empty", "garbage"]
)
def test_a_lost_or_damaged_pointer_file_resumes_from_the_checkpoint_files(
    make_config, tmp_path, pointer
):
    train_and_evaluate(make_config())
    path = tmp_path / "run" / "checkpoints" / "checkpoint"
    if pointer is None:
        path.unlink()
    else:
        path.write_text(pointer)
    result = train_and_evaluate(make_config("train.steps=60"))
    assert result["step"] == 60
    assert steps_logged(tmp_path / "run") == [10, 20, 30, 40, 50, 60]  # history kept


def test_a_second_process_on_the_run_dir_stops_in_one_line_naming_the_holder(make_config, tmp_path):
    (tmp_path / "run").mkdir()
    busy = pytest.raises(RunError, match=r"in use by pid \d+ on .*train into another run_dir")
    with RunDirLock(str(tmp_path / "run")), busy:
        train_and_evaluate(make_config())
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert train_and_evaluate(make_config())["step"] == 40  # released when the holder ends


def test_train_steps_at_or_below_the_checkpoint_trains_nothing_and_rewrites_nothing(
    make_config, tmp_path
):
    train_and_evaluate(make_config())
    final = (tmp_path / "run" / "final_metrics.json").read_text()
    with pytest.raises(AlreadyDone, match="already at step 40 .*train.steps=40 trains nothing"):
        train_and_evaluate(make_config())
    with pytest.raises(RunError, match="already at step 40 .*train.steps=30 trains nothing"):
        train_and_evaluate(make_config("train.steps=30"))
    assert (tmp_path / "run" / "final_metrics.json").read_text() == final
    assert steps_logged(tmp_path / "run") == [10, 20, 30, 40]


def test_bad_data_stops_before_the_run_dir_is_made(make_config, tmp_path):
    path = tmp_path / "bad.npz"
    x = np.zeros((10, 8), np.float32)
    np.savez(path, x_train=x, y_train=np.zeros(9), x_test=x, y_test=np.zeros(10))
    with pytest.raises(RunError, match="x_train has 10 rows but y_train has 9"):
        train_and_evaluate(make_config(f"data.path={path}"))
    assert not (tmp_path / "run").exists()


def test_run_json_keeps_every_segment_and_records_changed_settings(make_config, tmp_path, capsys):
    train_and_evaluate(make_config("train.steps=20"))
    capsys.readouterr()
    train_and_evaluate(make_config("train.batch_size=16", "optimizer.learning_rate=0.001"))
    assert "changed settings (recorded in run.json): optimizer.learning_rate 0.002 -> 0.001" in (
        capsys.readouterr().err
    )
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    first, second = record["segments"]
    assert (first["start_step"], first["end_step"]) == (0, 20)
    assert (second["start_step"], second["end_step"]) == (20, 40)
    assert second["changed"] == {
        "optimizer.learning_rate": [0.002, 0.001],
        "train.batch_size": [32, 16],
        "train.steps": [20, 40],
    }
    assert {"host", "started", "command", "versions"} <= set(second)
    assert record["config"]["train"]["batch_size"] == 16  # the newest segment's config


def test_a_full_disk_during_a_save_stops_in_one_line_and_the_next_run_resumes(
    make_config, tmp_path
):
    train_and_evaluate(make_config("train.steps=20"))

    def full_disk(path):  # what a write cut short by a full disk leaves, then its error
        prefix = path.numpy().decode()
        os.makedirs(f"{prefix}_temp")
        with open(f"{prefix}.data-00000-of-00002", "wb") as file:
            file.write(b"partial")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    real_init = checkpoints.CheckpointKeeper.__init__

    def keeper_on_a_full_disk(keeper, *args, **kwargs):
        real_init(keeper, *args, **kwargs)
        keeper._write = full_disk

    full = pytest.raises(RunError, match=r"could not save .*ckpt-40 \(No space left.*ckpt-20")
    with mock.patch.object(checkpoints.CheckpointKeeper, "__init__", keeper_on_a_full_disk), full:
        train_and_evaluate(make_config())
    directory = tmp_path / "run" / "checkpoints"
    assert not list(directory.glob("ckpt-40*"))  # no partial files, no ckpt-40_temp
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-20")
    assert train_and_evaluate(make_config())["step"] == 40


def test_a_full_disk_at_start_leaves_no_temporary_run_json(make_config, tmp_path):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    full = pytest.raises(RunError, match=r"run.json: could not be written \(No space left")
    with mock.patch("json.dump", no_space), full:
        train_and_evaluate(make_config())
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_a_non_finite_evaluation_is_logged_and_stops_the_run_as_divergence(make_config, tmp_path):
    nan = mock.patch.object(controller.Trainer, "evaluate", lambda *_: {"eval_loss": float("nan")})
    diverged = pytest.raises(Diverged, match="by step 20: eval_loss=nan is not finite; last good")
    with nan, diverged:
        train_and_evaluate(make_config())
    assert read_metrics(str(tmp_path / "run"))[-1]["eval_loss"] == "nan"
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")) is None


def test_a_damaged_run_json_is_one_line_for_train_and_evaluate(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=20"))
    (tmp_path / "run" / "run.json").write_text('{"config": {"trai')
    with pytest.raises(RunError, match=r"run.json: damaged .*restore it from a copy"):
        train_and_evaluate(make_config())
    with pytest.raises(Exception, match="run.json: not a run.json written by training"):
        evaluate(make_config())


def test_a_changed_optimizer_without_run_json_is_refused_not_half_restored(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=20"))
    (tmp_path / "run" / "run.json").unlink()  # no record to compare the config with
    # the checkpoint carries the settings it was written with, and names the one that differs
    refused = "ckpt-20: written with other settings: optimizer.name was adam, now sgd "
    with pytest.raises(RunError, match=refused):
        train_and_evaluate(make_config("optimizer.name=sgd"))
    refused = "ckpt-20: written with other settings: task.hidden_units was 16, now 8;"
    with pytest.raises(RunError, match=refused):
        train_and_evaluate(make_config("task.hidden_units=8"))


def test_a_run_dir_named_with_pattern_characters_resumes_evaluates_and_exports(
    make_config, tmp_path, capsys
):
    from {{ cookiecutter.package_name }}.evaluate import evaluate
    from {{ cookiecutter.package_name }}.export import export

    # TensorFlow reads a checkpoint prefix as a glob pattern: this run_dir matched nothing
    run_dir = f"'{tmp_path / 'exp[1]*{a,b}?'}'"
    train_and_evaluate(make_config("train.steps=20", run_dir=run_dir))
    capsys.readouterr()
    assert train_and_evaluate(make_config(run_dir=run_dir))["step"] == 40
    err = capsys.readouterr().err
    assert "ckpt-20; next step 21" in err and "damaged" not in err
    assert evaluate(make_config(run_dir=run_dir))["step"] == 40
    exported = export(make_config(run_dir=run_dir))
    assert sorted(os.listdir(exported)) == ["model.keras", "run.json", "saved_model"]
