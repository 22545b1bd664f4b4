"""Runs killed the way clusters kill them: real processes, real signals (slow)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import small

pytestmark = pytest.mark.slow

PACKAGE = "{{ cookiecutter.package_name }}"
RUN = [
    "deterministic=true",
    "train.steps=1500",
    "train.log_every_steps=50",
    "checkpoint.every_steps=100",
    "eval.every_steps=500",
]


def start(run_dir, *overrides, task="regression"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # each task's small settings on top (Task.small_overrides)
    run = [f"task={task}", *RUN, *small(task)]
    return subprocess.Popen(
        [sys.executable, "-m", f"{PACKAGE}.train", f"run_dir={run_dir}", *run, *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def logged_steps(run_dir):
    try:
        with open(run_dir / "metrics.jsonl", encoding="utf-8") as file:
            return [json.loads(line)["step"] for line in file if line.endswith("\n")]
    except FileNotFoundError:
        return []


def wait_for_step(process, run_dir, step, timeout=120):
    deadline = time.monotonic() + timeout
    while not logged_steps(run_dir) or logged_steps(run_dir)[-1] < step:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training did not reach the step in time"
        time.sleep(0.02)


def finish(process):
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def final_digest(run_dir):
    return json.loads((run_dir / "final_metrics.json").read_text())["weights_sha256"]


def test_run_killed_twice_resumes_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    straight = tmp_path / "straight"
    code, _, err = finish(start(straight))
    assert code == 0, err
    killed = tmp_path / "killed"
    for kill_after in (250, 1050):  # two kills, at different points of the run
        process = start(killed)
        wait_for_step(process, killed, kill_after)
        process.send_signal(signal.SIGKILL)
        process.wait()
    code, _, err = finish(start(killed))
    assert code == 0, err
    assert "next step" in err  # it resumed
    assert final_digest(killed) == final_digest(straight)


def test_a_run_on_shards_killed_resumes_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    shards = tmp_path / "shards"
    prepare = [sys.executable, "-m", f"{PACKAGE}.prepare", f"data.files={shards}"]
    subprocess.run(
        [*prepare, "task=regression", "task.train_size=2048"], check=True, capture_output=True
    )
    files = f"data.files={shards}"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    code, _, err = finish(start(straight, files))
    assert code == 0, err
    process = start(killed, files)
    wait_for_step(process, killed, 650)
    process.send_signal(signal.SIGKILL)
    process.wait()
    code, _, err = finish(start(killed, files))
    assert code == 0, err
    assert "next step" in err
    assert final_digest(killed) == final_digest(straight)


RESEARCH = [
    "optimizer.schedule=warmup_cosine",
    "optimizer.warmup_steps=100",
    "optimizer.ema_decay=0.99",
    "train.accumulate_steps=2",
    "checkpoint.best_metric=eval_loss",
    "checkpoint.patience=100",
    "eval.every_steps=100",
]


def test_a_run_with_every_research_feature_killed_resumes_bitwise_and_exports_its_best(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    code, _, err = finish(start(straight, *RESEARCH))
    assert code == 0, err
    process = start(killed, *RESEARCH)
    wait_for_step(process, killed, 650)
    process.send_signal(signal.SIGKILL)
    process.wait()
    code, _, err = finish(start(killed, *RESEARCH))
    assert code == 0, err
    assert "next step" in err
    assert final_digest(killed) == final_digest(straight)
    best = json.loads((killed / "checkpoints" / "best" / "best.json").read_text())
    assert best == json.loads((straight / "checkpoints" / "best" / "best.json").read_text())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    exported = subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.export", f"run_dir={killed}", "checkpoint.which=best"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert exported.returncode == 0, exported.stderr
    assert f"exported step {best['step']} (best)" in exported.stdout


def test_sigterm_saves_the_current_step_and_the_restart_continues_there(tmp_path, task):
    run_dir = tmp_path / "run"
    process = start(run_dir, task=task)
    wait_for_step(process, run_dir, 150)
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process)
    assert code == 143, err
    step = int(err.split("stopped by signal at step ")[1].split(";")[0])
    assert (run_dir / "checkpoints" / f"ckpt-{step}.index").is_file()
    code, _, err = finish(start(run_dir, f"train.steps={step + 10}", task=task))
    assert code == 0, err
    assert f"ckpt-{step}; next step {step + 1}" in err


def test_kills_during_frequent_saves_never_leave_latest_on_a_broken_checkpoint(tmp_path):
    import tensorflow as tf

    from {{ cookiecutter.package_name }}.loop.checkpoints import unreadable_reason

    run_dir = tmp_path / "run"
    # a checkpoint every 5 steps: most of the wall time is spent saving, so kills land in saves
    saving = ["checkpoint.every_steps=5", "train.steps_per_execution=5", "train.steps=100000"]
    for delay in (0.05, 0.13, 0.21, 0.34):
        process = start(run_dir, *saving)
        wait_for_step(
            process, run_dir, logged_steps(run_dir)[-1] + 50 if logged_steps(run_dir) else 50
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
        assert latest is not None and unreadable_reason(latest) is None, latest
