"""Two workers on localhost, driven by TF_CONFIG like any cluster (slow)."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.launch import free_ports, launch, tf_config

from .conftest import small

pytestmark = pytest.mark.slow
PACKAGE = "{{ cookiecutter.package_name }}"


def test_two_local_workers_finish_with_the_same_weights_and_one_set_of_files(tmp_path, task):
    run_dir = tmp_path / "run"
    before = set(Path(tempfile.gettempdir()).glob("ckpt-worker-*"))
    processes = launch(
        2,
        [
            f"run_dir={run_dir}",
            f"task={task}",
            *small(task),
            "train.steps=40",
            "checkpoint.every_steps=20",
            "train.log_every_steps=10",
            "eval.batch_size=7",  # a short last batch: one worker's replica gets no example
        ],
    )
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    finals = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert finals[0]["weights_sha256"] == finals[1]["weights_sha256"]
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.index")) == [
        "ckpt-20.index",
        "ckpt-40.index",
    ]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert steps == [10, 20, 30, 40]  # written once, by the chief
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["strategy"], run["num_workers"], run["num_replicas"]) == (
        "multi_worker_mirrored",
        2,
        2,
    )
    assert set(Path(tempfile.gettempdir()).glob("ckpt-worker-*")) == before  # cleaned up


def prepare_shards(directory, *overrides):
    subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.prepare", f"data.files={directory}", *overrides],
        check=True,
        capture_output=True,
    )


def test_two_workers_on_shards_finish_with_the_same_weights(tmp_path):
    shards = tmp_path / "shards"
    prepare_shards(shards, "task=regression", *small("regression"))
    run_dir = tmp_path / "run"
    processes = launch(
        2,
        [f"run_dir={run_dir}", f"data.files={shards}", "task=regression", *small("regression")]
        + ["train.steps=40"],
    )
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    finals = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert finals[0]["weights_sha256"] == finals[1]["weights_sha256"]
    assert finals[0]["eval_loss"] < 1.0


# Each worker reads two epochs of its share of the shards through the strategy's own input
# pipelines and prints the ids of the examples its replica received.
READ_TWO_EPOCHS = """
import json, sys
import tensorflow as tf
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.tasks.base import make_task
strategy = tf.distribute.MultiWorkerMirroredStrategy()
cfg = load_config(["task=regression", "task.input_dim=1", f"data.files={sys.argv[1]}"])
source = make_task(cfg).source(cfg.data)
iterator = iter(source.train_batches(strategy, 64, seed=5, start_step=0))
ids = []
for _ in range(2 * source.num_train_examples // 64 + 2):
    x, _ = next(iterator)
    ids += strategy.experimental_local_results(x)[0].numpy()[:, 0].astype(int).tolist()
print(json.dumps(ids))
"""


@pytest.mark.parametrize(("num_shards", "sharding"), [(4, "files"), (3, "examples")])
def test_two_workers_see_every_example_once_per_epoch(tmp_path, num_shards, sharding):
    import numpy as np

    from {{ cookiecutter.package_name }}.config import load_config
    from {{ cookiecutter.package_name }}.tasks.base import make_task

    rows = np.arange(1024, dtype=np.float32)[:, None]  # the input is the example's id
    np.savez(tmp_path / "ids.npz", x_train=rows, y_train=rows, x_test=rows[:8], y_test=rows[:8])
    shards = tmp_path / "shards"
    npz = f"data.path={tmp_path / 'ids.npz'}"
    prepare_shards(shards, npz, "task=regression", "task.input_dim=1", f"data.shards={num_shards}")
    cfg = load_config(["task=regression", "task.input_dim=1", f"data.files={shards}"])
    plans = [make_task(cfg).source(cfg.data).plan(2, worker) for worker in (0, 1)]
    assert [plan[1] for plan in plans] == [sharding, sharding]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    ports = free_ports(2)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", READ_TWO_EPOCHS, str(shards)],
            env={**env, "TF_CONFIG": tf_config(ports, index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    seen = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        seen.append(json.loads(out.strip().splitlines()[-1]))
    # Each worker's epoch is its share (513 and 511 examples when every 2nd example of 3 records
    # of 342, 341 and 341 is kept): within it, every example once, and none of the other's.
    sizes = [plan[2] for plan in plans]
    assert sum(sizes) == 1024
    for epoch in (0, 1):
        parts = [seen[w][epoch * sizes[w] : (epoch + 1) * sizes[w]] for w in (0, 1)]
        assert [len(set(part)) for part in parts] == sizes
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == list(range(1024))


def start_workers(overrides_of_worker, stderr=subprocess.PIPE):
    ports = free_ports(len(overrides_of_worker))
    command = [sys.executable, "-m", f"{PACKAGE}.train", "distribute=multi_worker_mirrored"]
    return [
        subprocess.Popen(
            [*command, *overrides],
            env={**os.environ, "TF_CONFIG": tf_config(ports, index), "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        for index, overrides in enumerate(overrides_of_worker)
    ]


def test_workers_with_different_settings_all_refuse_in_one_line_before_training(tmp_path):
    # Different steps once hung both workers for good; different learning rates trained on
    # with different weights.
    common = [f"run_dir={tmp_path / 'run'}", "task=regression", *small("regression")]
    workers = start_workers([[*common, "train.steps=40"], [*common, "train.steps=60"]])
    results = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [2, 2]
    for (_, err), steps in zip(results, (40, 60)):
        assert err.strip().splitlines()[-1] == (
            f"error: the workers disagree on their settings: train.steps (this worker: {steps}); "
            "start every worker with the same settings (only run_dir, data.path, data.files, "
            "distribute.port_base, profile.*, threads.* may differ)"
        )
    assert not (tmp_path / "run").exists()  # nothing written


def test_sigterm_to_launch_stops_every_worker_with_a_save(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", f"{PACKAGE}.launch", "--workers", "2"]
    overrides = [f"run_dir={run_dir}", "task=regression", *small("regression")]
    overrides += [
        "train.steps=1000000",
        "checkpoint.every_steps=1000000",
        "train.log_every_steps=10",
    ]
    launcher = subprocess.Popen(
        [*command, *overrides],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (run_dir / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(1)  # training has begun once the chief logs
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, err
    assert len(re.findall(r"stopped by signal at step \d+; checkpoint ckpt-\d+ saved", err)) == 2
    assert list((run_dir / "checkpoints").glob("ckpt-*.index"))  # the chief saved
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""  # no worker outlives the launcher


def test_a_worker_whose_peer_never_starts_ends_in_one_line_by_the_deadline_or_a_signal(tmp_path):
    # Worker 0 alone once waited for its peer for good, deaf to SIGTERM and Ctrl-C.
    common = [f"run_dir={tmp_path / 'run'}", "task=regression", *small("regression")]
    ports = free_ports(2)
    command = [sys.executable, "-m", f"{PACKAGE}.train", "distribute=multi_worker_mirrored"]
    env = {**os.environ, "TF_CONFIG": tf_config(ports, 0), "TF_CPP_MIN_LOG_LEVEL": "2"}
    alone = subprocess.run(
        [*command, *common, "distribute.peer_timeout_seconds=5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert alone.returncode == 2
    assert alone.stderr.strip().splitlines()[-1] == (
        "error: the cluster did not form within distribute.peer_timeout_seconds=5: worker 1 "
        f"(localhost:{ports[1]}) did not answer; start every worker (each with its own task "
        "index), or give them longer"
    )
    waiting = subprocess.Popen(
        [*command, *common, "distribute.peer_timeout_seconds=600"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(15)  # past TensorFlow's import, into the wait
    waiting.send_signal(signal.SIGTERM)
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 143
    assert err.strip().splitlines()[-1] == (
        "stopped by SIGTERM before training started; nothing was saved"
    )
    assert not (tmp_path / "run").exists()


def test_a_worker_killed_mid_run_ends_the_other_in_one_line_and_keeps_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [f"run_dir={run_dir}", "task=regression", *small("regression")]
    overrides.append("train.steps=1000000")
    overrides += ["checkpoint.every_steps=50", "train.log_every_steps=10"]
    chief, other = start_workers([overrides, overrides])
    deadline = time.monotonic() + 240
    while not list((run_dir / "checkpoints").glob("ckpt-*.index")):
        assert time.monotonic() < deadline and chief.poll() is None, chief.stderr.read()
        time.sleep(1)
    other.kill()
    killed = time.monotonic()
    _, err = chief.communicate(timeout=120)
    assert time.monotonic() - killed < 60  # within a minute of the fault
    assert chief.returncode == 2
    kept = sorted(int(p.stem[5:]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    assert re.fullmatch(
        r"error: a worker of the cluster stopped answering \(.+\); the newest checkpoint is "
        rf"ckpt-{kept[-1]}: start every worker again with the same command to resume",
        err.strip().splitlines()[-1],
    ), err[-2000:]
    assert "Traceback" not in err
