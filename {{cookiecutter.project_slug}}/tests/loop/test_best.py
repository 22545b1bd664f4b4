"""The best checkpoint by an evaluation value, early stopping, and `which=best`."""

import json

import pytest

from {{ cookiecutter.package_name }}.errors import AlreadyDone, RunError
from {{ cookiecutter.package_name }}.evaluate import evaluate
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics

EVERY_10 = ("eval.every_steps=10", "checkpoint.best_metric=eval_loss")


def evaluations(run_dir):
    return [(r["step"], r["eval_loss"]) for r in read_metrics(str(run_dir)) if "eval_loss" in r]


def test_the_best_checkpoint_is_the_lowest_evaluation_and_evaluate_reads_it(
    make_config, tmp_path, capsys
):
    # A high learning rate: the held-out loss is not monotonic, the best is not the last.
    cfg = make_config(*EVERY_10, "train.steps=60", "optimizer.learning_rate=0.05")
    result = train_and_evaluate(cfg)
    history = evaluations(tmp_path / "run")
    best_step, best_value = min(history, key=lambda item: item[1])
    assert (result["best_step"], result["best_eval_loss"]) == (best_step, best_value)
    record = json.loads((tmp_path / "run/checkpoints/best/best.json").read_text())
    assert (record["step"], record["value"]) == (best_step, best_value)
    assert [p.name for p in (tmp_path / "run/checkpoints/best").glob("*.index")] == [
        f"ckpt-{best_step}.index"
    ]
    best = evaluate(make_config("checkpoint.which=best"))
    assert best["step"] == best_step and best["eval_loss"] == pytest.approx(best_value, rel=1e-6)
    assert evaluate(make_config())["step"] == 60  # latest by default
    capsys.readouterr()
    export(make_config("checkpoint.which=best"))
    assert f"exported step {best_step} (best)" in capsys.readouterr().out


def test_max_mode_keeps_the_highest_value(make_config, tmp_path):
    cfg = make_config(
        "eval.every_steps=10",
        "checkpoint.best_metric=eval_accuracy",
        "checkpoint.best_mode=max",
        task="image_classification",
    )
    result = train_and_evaluate(cfg)
    accuracies = [r["eval_accuracy"] for r in read_metrics(cfg.run_dir) if "eval_accuracy" in r]
    assert result["best_eval_accuracy"] == max(accuracies)


def test_patience_stops_the_run_naming_the_best_step_and_a_rerun_stays_stopped(
    make_config, tmp_path, capsys
):
    # lr 0.5 overshoots: the held-out loss stops improving within a few evaluations
    cfg = make_config(
        *EVERY_10, "checkpoint.patience=2", "train.steps=400", "optimizer.learning_rate=0.5"
    )
    result = train_and_evaluate(cfg)
    history = evaluations(tmp_path / "run")
    best_step = min(history, key=lambda item: item[1])[0]
    assert result["step"] < 400 and result["step"] == best_step + 20  # two evaluations later
    err = capsys.readouterr().err
    assert f"stopped early at step {result['step']}: eval_loss did not improve for 2" in err
    assert f"best: step {best_step} " in err
    assert (tmp_path / "run/checkpoints" / f"ckpt-{result['step']}.index").is_file()
    with pytest.raises(AlreadyDone, match="stopped early"):
        train_and_evaluate(cfg)
    more_patience = make_config(
        *EVERY_10, "checkpoint.patience=50", "train.steps=400", "optimizer.learning_rate=0.5"
    )
    assert train_and_evaluate(more_patience)["step"] > result["step"]  # goes on


def test_which_best_without_a_best_checkpoint_is_one_line(make_config):
    train_and_evaluate(make_config("train.steps=20"))
    with pytest.raises(RunError, match="no best checkpoint; train with checkpoint.best_metric"):
        evaluate(make_config("checkpoint.which=best"))


def test_a_best_metric_the_task_does_not_report_names_the_ones_it_does(make_config, tmp_path):
    not_reported = pytest.raises(RunError, match="not an evaluation value.*eval_loss, eval_mae")
    with not_reported:
        train_and_evaluate(make_config("checkpoint.best_metric=eval_accuracy"))
    assert not (tmp_path / "run").exists()  # refused before anything was written
