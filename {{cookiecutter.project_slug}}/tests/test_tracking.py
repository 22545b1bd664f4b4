"""actions=[mlflow]: runs and sweeps in an MLflow SQLite store, read back by MLflow's client."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install -e '.[mlflow]'")


def tracked(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return store, ["actions=[mlflow]", f"actions.mlflow.tracking_uri={store}"]


def only_run(store, experiment):
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, runs
    return client, runs[0]


def test_a_run_is_recorded_with_its_config_metrics_final_values_and_export(make_config, tmp_path):
    store, overrides = tracked(tmp_path)
    cfg = make_config("train.steps=40", *overrides)
    result = train_and_evaluate(cfg)
    client, run = only_run(store, "regression")
    assert run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "40" and run.data.params["seed"] == "42"
    assert run.data.tags["run_dir"] == str(tmp_path / "run")
    assert run.info.run_name == "run"  # outside a sweep: the run directory's name
    kind = client.get_experiment_by_name("regression").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"  # the UI opens on training runs, not GenAI
    logged = read_metrics(cfg.run_dir)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [
        (line["step"], pytest.approx(line["loss"], rel=1e-6)) for line in logged
    ]
    evals = client.get_metric_history(run.info.run_id, "eval_loss")
    assert [m.step for m in evals] == [20, 40]
    assert run.data.metrics["final_eval_loss"] == pytest.approx(result["eval_loss"], rel=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "export")}
    assert {"export/model.keras", "export/saved_model"} <= artifacts


def test_a_resumed_run_goes_on_in_the_same_mlflow_run(make_config, tmp_path):
    store, overrides = tracked(tmp_path)
    overrides.append("actions.mlflow.log_model=false")
    train_and_evaluate(make_config("train.steps=20", *overrides))
    train_and_evaluate(make_config("train.steps=40", *overrides))
    client, run = only_run(store, "regression")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps == [10, 20, 30, 40] and run.info.status == "FINISHED"


@pytest.mark.slow
def test_a_sweep_is_one_run_per_job_in_one_experiment(tmp_path):
    store, overrides = tracked(tmp_path)
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.train", "-m", "seed=0,1"]
    command += ["task=regression"]
    command += [f"hydra.sweep.dir={tmp_path / 'sweep'}", "train.steps=20", *overrides]
    command += ["train.log_every_steps=10", "eval.every_steps=10", "checkpoint.every_steps=10"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("regression")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["seed"] for run in runs) == ["0", "1"]
    assert sorted(run.info.run_name for run in runs) == ["seed=0", "seed=1"]
    for run in runs:
        job = run.data.tags["run_dir"]
        final = json.loads(Path(job, "final_metrics.json").read_text(encoding="utf-8"))
        assert run.info.status == "FINISHED"
        assert run.data.metrics["final_eval_loss"] == pytest.approx(final["eval_loss"], rel=1e-6)
        assert "export/model.keras" in {
            a.path for a in client.list_artifacts(run.info.run_id, "export")
        }
