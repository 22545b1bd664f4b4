"""Hydra's own command line: --help, --cfg, and sweeps (-m) with a summary naming the best job."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from {{ cookiecutter.package_name }}.cli import run
from {{ cookiecutter.package_name }}.sweep import (
    best_row,
    plotted,
    swept_overrides,
    write_summary,
)

from .conftest import TASKS, python_output

PACKAGE = "{{ cookiecutter.package_name }}"


def test_help_lists_every_group_and_key_with_its_default_and_imports_no_tensorflow():
    code = (
        f"import sys; from {PACKAGE}.cli import run\n"
        "try:\n    run('train', None, ['--help'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = python_output(code)
    assert f"task: {', '.join(sorted(TASKS))}" in out
    assert "distribute: mirrored, multi_worker_mirrored, none, tpu" in out
    for key in ("learning_rate: 0.002", "steps: 3000", "best_metric: ''", "patience: 0"):
        assert key in out, key
    assert out.strip().endswith("False")  # no TensorFlow for --help


def test_cfg_job_prints_the_composed_config_with_the_overrides(capsys):
    assert run("train", None, ["--cfg", "job", "task=image_classification", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "seed: 7" in out and "ImageClassificationTask" in out and "filters: 16" in out


def test_a_sweep_runs_every_combination_into_its_own_run_dir_and_summarizes(tmp_path, capsys):
    seen = []

    def fake_training(cfg):  # what train writes at the end, with a loss that depends on both
        seen.append((cfg.run_dir, cfg.seed, cfg.optimizer.learning_rate))
        os.makedirs(cfg.run_dir, exist_ok=True)
        final = {"step": 10, "eval_loss": cfg.optimizer.learning_rate * (cfg.seed + 1)}
        with open(os.path.join(cfg.run_dir, "final_metrics.json"), "w") as file:
            json.dump(final, file)

    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer.learning_rate=0.1,0.3", "seed=range(2)", f"hydra.sweep.dir={sweep}"]
    assert run("train", fake_training, args) == 0
    assert sorted(seen) == sorted(
        (str(sweep / str(job)), seed, rate)
        for job, (rate, seed) in enumerate([(0.1, 0), (0.1, 1), (0.3, 0), (0.3, 1)])
    )
    with open(sweep / "summary.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["overrides"] for row in rows] == [
        f"optimizer.learning_rate={rate} seed={seed}" for rate in (0.1, 0.3) for seed in (0, 1)
    ]
    assert [(row["optimizer.learning_rate"], row["seed"]) for row in rows] == [
        ("0.1", "0"),
        ("0.1", "1"),
        ("0.3", "0"),
        ("0.3", "1"),
    ]  # one column per swept key
    assert (sweep / "summary.png").stat().st_size > 0
    # The seed is a repeat, not a setting: the mean and spread over seeds per learning rate.
    with open(sweep / "summary_by_setting.csv", encoding="utf-8") as file:
        settings = list(csv.DictReader(file))
    assert [row["optimizer.learning_rate"] for row in settings] == ["0.1", "0.3"]
    assert [float(row["mean"]) for row in settings] == pytest.approx([0.15, 0.45])
    assert [float(row["std"]) for row in settings] == pytest.approx([0.05, 0.15])
    out = capsys.readouterr().out
    assert "optimizer.learning_rate=0.1: eval_loss mean 0.15 +- 0.05 over 2 seeds" in out
    assert "best: optimizer.learning_rate=0.1 (eval_loss mean 0.15 over 2 seeds, jobs 0, 1)" in out
    # TensorBoard's HParams view: one run per job, its swept keys and its figures.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert f"tensorboard --logdir {sweep / 'hparams'}" in out
    events = EventAccumulator(str(sweep / "hparams" / "3"))
    events.Reload()
    session = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"optimizer.learning_rate" in session and b"0.3" in session
    assert "eval_loss" in events.Tags()["tensors"]


def test_with_seeds_swept_the_best_is_the_setting_with_the_best_mean_not_one_lucky_job(
    tmp_path, capsys
):
    # Job 0 (rate 0.1, seed 0) is the single lowest; rate 0.3 is lower on average.
    losses = {(0.1, 0): 0.1, (0.1, 1): 0.9, (0.3, 0): 0.3, (0.3, 1): 0.4}

    def fake_training(cfg):
        os.makedirs(cfg.run_dir, exist_ok=True)
        final = {"step": 10, "eval_loss": losses[cfg.optimizer.learning_rate, cfg.seed]}
        with open(os.path.join(cfg.run_dir, "final_metrics.json"), "w") as file:
            json.dump(final, file)

    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer.learning_rate=0.1,0.3", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert run("train", fake_training, args) == 0
    best = [line for line in capsys.readouterr().out.splitlines() if line.startswith("best:")]
    assert best == [
        f"best: optimizer.learning_rate=0.3 (eval_loss mean 0.35 over 2 seeds, jobs 2, 3); "
        f"summary in {sweep / 'summary.csv'}"
    ]
    # Each job is told apart by its swept values (MLflow's run names), not the common ones.
    assert swept_overrides(str(sweep / "3")) == ["optimizer.learning_rate=0.3", "seed=1"]


def test_a_fixed_value_hydra_escapes_in_the_jobs_record_is_not_swept(tmp_path):
    # Hydra records the command's `uri=sqlite:///x` as `uri=sqlite\:///x` in each job.
    uri = "actions.mlflow.tracking_uri=sqlite:////tmp/mlflow.db"
    command = {"hydra": {"overrides": {"task": ["seed=0,1", uri]}}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(command), encoding="utf-8")
    (tmp_path / "1" / ".hydra").mkdir(parents=True)
    job = ["seed=1", uri.replace("sqlite:", "sqlite\\:")]
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(job), "utf-8")
    assert swept_overrides(str(tmp_path / "1")) == ["seed=1"]


def test_the_summary_plot_puts_the_best_setting_first_with_short_labels():
    grouped = [
        {"optimizer.learning_rate": "0.0031415926535897", "model.units": "8", "mean": 0.5},
        {"optimizer.learning_rate": "0.001", "model.units": "16", "mean": 0.25},
        {"optimizer.learning_rate": "0.01", "model.units": "16", "runs": 0},  # all failed
    ]
    keys = ["optimizer.learning_rate", "model.units"]
    assert [label for label, _ in plotted(grouped, keys, "min")] == [
        "learning_rate=0.001 units=16",
        "learning_rate=0.00314 units=8",
    ]
    assert [row["mean"] for _, row in plotted(grouped, keys, "max")] == [0.5, 0.25]


def test_a_sweep_of_other_overrides_into_a_used_directory_is_refused_before_any_job(
    tmp_path, capsys
):
    ran = []

    def fake_training(cfg):
        ran.append(cfg.optimizer.learning_rate)
        os.makedirs(cfg.run_dir, exist_ok=True)
        with open(os.path.join(cfg.run_dir, "final_metrics.json"), "w") as file:
            json.dump({"step": 10, "eval_loss": cfg.optimizer.learning_rate}, file)

    sweep = tmp_path / "sweep"
    first = ["-m", "optimizer.learning_rate=0.1,0.3", f"hydra.sweep.dir={sweep}"]
    assert run("train", fake_training, first) == 0
    summary = (sweep / "summary.csv").read_text()
    capsys.readouterr()
    second = ["-m", "optimizer.learning_rate=0.5,0.7,0.9", f"hydra.sweep.dir={sweep}"]
    assert run("train", fake_training, second) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: hydra.sweep.dir={sweep}: already holds a sweep of other overrides "
        "(optimizer.learning_rate=0.1,0.3; jobs 0..1); give each sweep its own directory, or "
        "run that sweep's command again to resume it"
    )
    assert ran == [0.1, 0.3]  # no job of the second sweep ran
    assert (sweep / "summary.csv").read_text() == summary
    # The first sweep's own command resumes it: its jobs run again into their directories.
    assert run("train", fake_training, first) == 0
    assert ran == [0.1, 0.3, 0.1, 0.3]
    assert f"resuming the sweep in {sweep} (jobs 0..1 exist)" in capsys.readouterr().out


def test_two_sweeps_started_in_the_same_second_get_different_default_directories():
    import datetime
    from importlib import resources

    import yaml

    config = resources.files(f"{PACKAGE}.conf").joinpath("config.yaml").read_text()
    pattern = yaml.safe_load(config)["hydra"]["sweep"]["dir"]  # sweeps/${now:<format>}
    assert pattern.startswith("sweeps/${now:") and pattern.endswith("}")
    time_format = pattern[len("sweeps/${now:") : -1]
    same_second = [datetime.datetime(2026, 1, 1, 12, 0, 0, micro) for micro in (1, 2)]
    assert len({moment.strftime(time_format) for moment in same_second}) == 2


def test_a_failed_job_is_a_row_of_its_own_and_the_best_is_among_the_others(tmp_path):
    for job, final in enumerate([{"eval_loss": 0.5}, None, {"eval_loss": 0.2}]):
        (tmp_path / str(job)).mkdir()
        if final:
            (tmp_path / str(job) / "final_metrics.json").write_text(json.dumps(final))
    rows = write_summary(str(tmp_path))
    assert [row["status"] for row in rows] == ["done", "failed or stopped", "done"]
    assert best_row(rows, "eval_loss", "min")["job"] == 2
    assert best_row(rows, "eval_loss", "max")["job"] == 0


@pytest.mark.slow
def test_the_readme_sweep_trains_four_jobs_and_names_the_best(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, "-m", f"{PACKAGE}.train", "-m",
        "optimizer.learning_rate=0.001,0.003", "seed=0,1",
        "train.steps=60", "task=regression", "task.train_size=512", f"hydra.sweep.dir={tmp_path}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for job in range(4):
        assert json.loads((tmp_path / str(job) / "final_metrics.json").read_text())["step"] == 60
    assert "best: optimizer.learning_rate=" in done.stdout and (tmp_path / "summary.csv").is_file()


def test_an_optuna_search_minimizes_the_objective_each_run_returns(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    rates = []

    def fake_training(cfg):  # the objective is lowest at learning_rate = 0.3
        rates.append(cfg.optimizer.learning_rate)
        os.makedirs(cfg.run_dir, exist_ok=True)
        final = {"eval_loss": (cfg.optimizer.learning_rate - 0.3) ** 2}
        with open(os.path.join(cfg.run_dir, "final_metrics.json"), "w") as file:
            json.dump(final, file)

    sweep = tmp_path / "search"
    args = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.sampler.seed=0",
        "optimizer.learning_rate=interval(0.01, 1.0)",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run("train", fake_training, args) == 0
    assert len(rates) == 6
    import yaml

    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_rate = min(rates, key=lambda rate: (rate - 0.3) ** 2)
    assert result["best_params"]["optimizer.learning_rate"] == pytest.approx(best_rate)
    assert result["best_value"] == pytest.approx((best_rate - 0.3) ** 2)
