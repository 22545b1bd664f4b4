"""The outer loop: it trains, logs, evaluates, checkpoints at its cadences, and resumes."""

import json
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.loop.actions import Profile, next_boundary
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics

from ..conftest import SMALL, has_own_step, metric_names, noise_free, small


def checkpoint_steps(run_dir):
    state = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
    return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)


def weights_at(run_dir, step):
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{step}"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
        and "save_counter" not in name
        and not name.startswith("run_identity")  # whose run it is: each run's own
    }


def test_training_lowers_the_loss_and_writes_every_artifact(make_config, task):
    cfg = make_config("train.steps=60", task=task)
    result = train_and_evaluate(cfg)
    run_dir = cfg.run_dir
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    held_out = [key for key in result if key.startswith("eval_")]
    assert held_out, "every task logs held-out values"
    for key in held_out:
        assert [r["step"] for r in records if key in r] == [20, 40, 60], key
    logged = [key for key in records[0] if not key.startswith("eval_")]
    assert "steps_per_sec" in logged and any(key.endswith("learning_rate") for key in logged)
    for record in records:  # every training value at every log step, finite
        assert all(np.isfinite(record[key]) for key in logged), record
    if not has_own_step(task):  # the reference step's objective, and its names
        metrics = metric_names(cfg)
        for key in ("loss", "grad_norm", "learning_rate", *metrics):
            assert key in records[0], key
        assert records[-1]["loss"] < 0.8 * records[0]["loss"]
        assert {"eval_loss", *(f"eval_{name}" for name in metrics)} <= set(held_out)
    assert result["step"] == 60
    with open(f"{run_dir}/run.json", encoding="utf-8") as file:
        run_json = json.load(file)
    assert run_json["config"]["train"]["steps"] == 60
    assert {"tensorflow", "keras", "python"} <= set(run_json["versions"])
    assert tf.io.gfile.glob(f"{run_dir}/tensorboard/train/events.out.tfevents.*")


def test_train_step_traces_once_with_evaluation_interleaved(make_config):
    result = train_and_evaluate(make_config("train.steps=45", "train.steps_per_execution=7"))
    assert result["tracing_count"] == 1


def test_checkpoints_follow_the_cadence_and_keep_the_newest(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=100", "checkpoint.max_to_keep=3"))
    assert checkpoint_steps(tmp_path / "run") == [60, 80, 100]


def test_chunks_end_exactly_on_every_cadence_boundary(make_config):
    cfg = make_config("train.steps_per_execution=7", "train.log_every_steps=10")
    boundaries, step = [], 0
    while step < cfg.train.steps:
        step = next_boundary(step, cfg)
        boundaries.append(step)
    assert {10, 20, 30, 40} <= set(boundaries)
    assert max(b - a for a, b in zip([0, *boundaries], boundaries)) <= 7


def test_same_command_resumes_from_the_latest_checkpoint(make_config, tmp_path, capsys):
    train_and_evaluate(make_config("train.steps=20"))
    capsys.readouterr()
    result = train_and_evaluate(make_config("train.steps=40"))
    assert "ckpt-20; next step 21" in capsys.readouterr().err
    assert result["step"] == 40
    assert [r["step"] for r in read_metrics(str(tmp_path / "run"))] == [10, 20, 30, 40]


def test_model_metrics_are_logged_beside_the_task_metrics(make_config):
    cfg = make_config(task="regression")
    train_and_evaluate(cfg)
    records = read_metrics(cfg.run_dir)
    assert records[0]["reconstruction_loss"] > 0  # the regressor's own tracker


def test_deterministic_resume_is_bitwise_equal_to_one_run(make_config, tmp_path, task):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(make_config("deterministic=true", run_dir=straight, task=task))
    train_and_evaluate(
        make_config("deterministic=true", "train.steps=20", run_dir=resumed, task=task)
    )
    train_and_evaluate(make_config("deterministic=true", run_dir=resumed, task=task))
    a, b = weights_at(straight, 40), weights_at(resumed, 40)
    assert a.keys() == b.keys()
    if noise_free(task):  # a model with training-time noise: its seed states resume too
        assert any("seeds" in name for name in a), "noise seed states must be checkpointed"
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_changed_learning_rate_takes_effect_on_resume(make_config, tmp_path):
    # The checkpoint holds the optimizer's rate variable; the config's rate must win after it.
    train_and_evaluate(make_config("train.steps=20"))
    train_and_evaluate(make_config("optimizer.learning_rate=0.0005"))
    rates = {r["step"]: r["learning_rate"] for r in read_metrics(str(tmp_path / "run"))}
    assert rates[20] == np.float32(0.002) and rates[40] == np.float32(0.0005)


WARMUP_COSINE = ("optimizer.schedule=warmup_cosine", "optimizer.warmup_steps=10")


def test_the_logged_learning_rate_follows_the_warmup_cosine_schedule(make_config, tmp_path):
    train_and_evaluate(make_config(*WARMUP_COSINE, "optimizer.min_learning_rate=0.0002"))
    rates = [r["learning_rate"] for r in read_metrics(str(tmp_path / "run"))]
    # read after steps 10, 20, 30, 40: the optimizer has done that many updates
    expected = [0.0002 + 0.0018 * 0.5 * (1 + np.cos(np.pi * (s - 10) / 30)) for s in (10, 20, 30)]
    np.testing.assert_allclose(rates[:3], expected, rtol=1e-5)
    assert rates[3] == pytest.approx(0.0002)


def test_a_resumed_run_continues_the_schedule_bitwise(make_config, tmp_path):
    # decay_steps fixed: the first segment's shorter train.steps does not move the schedule
    schedule = (*WARMUP_COSINE, "optimizer.decay_steps=40")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(make_config("deterministic=true", *schedule, run_dir=straight))
    train_and_evaluate(
        make_config("deterministic=true", *schedule, "train.steps=20", run_dir=resumed)
    )
    train_and_evaluate(make_config("deterministic=true", *schedule, run_dir=resumed))
    a, b = weights_at(straight, 40), weights_at(resumed, 40)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_profile_step_range_writes_a_trace_for_tensorboard(make_config, tmp_path):
    cfg = make_config("profile.start_step=10", "profile.stop_step=17")
    boundaries, step = [], 0
    while step < cfg.train.steps:  # the profiler's action asks for both ends
        step = next_boundary(step, cfg, [Profile(cfg.profile, directory="unused")])
        boundaries.append(step)
    assert {10, 17} <= set(boundaries)  # the trace covers exactly steps 11..17
    train_and_evaluate(cfg)
    traces = list((tmp_path / "run" / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0


def test_a_resumed_run_with_accumulation_is_bitwise_equal_to_one_run(make_config, tmp_path):
    settings = ("deterministic=true", "train.accumulate_steps=2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(make_config(*settings, run_dir=straight))
    train_and_evaluate(make_config(*settings, "train.steps=20", run_dir=resumed))
    result = train_and_evaluate(make_config(*settings, run_dir=resumed))
    assert result["step"] == 40  # steps count updates, not micro-batches
    a, b = weights_at(straight, 40), weights_at(resumed, 40)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGUSR1, 138)],
    ids=["sigterm", "sigint", "sighup-ssh-closed", "sigusr1-slurm"],
)
def test_every_stop_signal_saves_the_current_step_and_exits_with_its_code(
    make_config, tmp_path, monkeypatch, signum, code
):
    from {{ cookiecutter.package_name }}.loop import controller
    from {{ cookiecutter.package_name }}.loop.logs import RunLog

    write = RunLog.write

    def write_then_signal(self, step, logs):  # the signal arrives at step 10, between chunks
        write(self, step, logs)
        if step == 10:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(RunLog, "write", write_then_signal)
    with pytest.raises(controller.Stop) as stop:
        train_and_evaluate(make_config("checkpoint.every_steps=20"))
    assert (stop.value.exit_code, stop.value.step) == (code, 10)
    assert checkpoint_steps(tmp_path / "run") == [10]  # saved off the cadence, at the signal


def test_a_signal_after_training_ended_says_what_was_saved(tmp_path, capsys):
    from {{ cookiecutter.package_name }} import plot
    from {{ cookiecutter.package_name }}.cli import run
    from {{ cookiecutter.package_name }}.train import train

    def slow_plot(run_dir):  # SIGTERM while the curves are drawn, after the last save
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    plot_curves = plot.plot_curves
    plot.plot_curves = slow_plot
    try:
        overrides = [f"run_dir={tmp_path / 'run'}", "task=regression", *SMALL, *small("regression")]
        code = run("train", train, overrides)
    finally:
        plot.plot_curves = plot_curves
    assert code == 143
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("stopped by SIGTERM after training ended at step 40: its checkpoints")
    assert "nothing was saved" not in err
    assert (tmp_path / "run" / "final_metrics.json").is_file()


def test_debug_smoke_runs_every_cadence_of_every_task(tmp_path, task):
    from {{ cookiecutter.package_name }}.config import load_config

    cfg = load_config(["debug=smoke", f"task={task}", *small(task)])
    cfg.run_dir = str(tmp_path / "run")
    result = train_and_evaluate(cfg)
    assert result["step"] == 20
    records = read_metrics(cfg.run_dir)
    assert [record["step"] for record in records] == [5, 10, 15, 20]
    held_out = [key for key in result if key.startswith("eval_")]
    assert held_out and all(key in records[1] and key in records[3] for key in held_out)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints == ["ckpt-10.index", "ckpt-20.index"]


def test_debug_overfit_drives_the_training_loss_far_down_on_four_batches(tmp_path):
    from {{ cookiecutter.package_name }}.config import load_config

    cfg = load_config(["debug=overfit", "task=regression", *noise_free("regression")])
    cfg.run_dir = str(tmp_path / "run")
    train_and_evaluate(cfg)
    losses = [record["loss"] for record in read_metrics(cfg.run_dir) if "loss" in record]
    assert len(losses) == 8 and losses[-1] < 0.2 * losses[0], losses
