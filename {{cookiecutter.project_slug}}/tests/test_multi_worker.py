"""Two workers on localhost, driven by TF_CONFIG like any cluster (slow)."""

import json
import tempfile
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.launch import launch

from .conftest import TASK_SMALL

pytestmark = pytest.mark.slow


def test_two_local_workers_finish_with_the_same_weights_and_one_set_of_files(tmp_path, task):
    run_dir = tmp_path / "run"
    before = set(Path(tempfile.gettempdir()).glob("ckpt-worker-*"))
    processes = launch(
        2,
        [
            f"run_dir={run_dir}",
            f"task={task}",
            *TASK_SMALL[task],
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
