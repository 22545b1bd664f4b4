"""The cluster launchers in deploy/: a Slurm batch script and a Kubeflow TFJob manifest.

The Slurm script runs here under a simulated allocation: a stand-in `srun` starts one process per
task with the variables a real job step sets, as Slurm would on two nodes.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.launch import launch
from {{ cookiecutter.package_name }}.loop.tf_config import slurm_tf_config

from .conftest import small

DEPLOY = Path(__file__).parents[1] / "deploy"
PACKAGE = "{{ cookiecutter.package_name }}"

# What srun does for the batch script: one process per task, each with its rank and the step's
# node list and task counts; a SIGTERM (preemption, time limit) reaches every task.
FAKE_SRUN = """#!PYTHON
import os, signal, subprocess, sys
args = sys.argv[1:]
while args[0].startswith("-"):
    args.pop(0)
tasks = int(os.environ["SLURM_NTASKS"])
step = {
    "SLURM_STEP_NUM_TASKS": str(tasks),
    "SLURM_STEP_NODELIST": os.environ["SLURM_JOB_NODELIST"],
    "SLURM_STEP_TASKS_PER_NODE": str(tasks),
    "SLURM_STEP_ID": "0",
}
ranks = [{"SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)} for i in range(tasks)]
processes = [subprocess.Popen(args, env={**os.environ, **step, **rank}) for rank in ranks]
signal.signal(signal.SIGTERM, lambda *_: [p.send_signal(signal.SIGTERM) for p in processes])
codes = [p.wait() for p in processes]
sys.exit(next((code for code in codes if code), 0))
"""


def two_free_ports() -> int:
    """A port p with p and p + 1 free (task i of a node listens on port_base + i)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("localhost", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("localhost", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two consecutive free ports")


def slurm_step(tasks: int, rank: int) -> dict:
    return {
        "SLURM_PROCID": str(rank),
        "SLURM_STEP_NUM_TASKS": str(tasks),
        "SLURM_STEP_NODELIST": "node[01-02]",
        "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
    }


def test_a_slurm_task_gets_the_tf_config_of_its_job_step(monkeypatch):
    for name, value in slurm_step(2, 1).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert json.loads(slurm_tf_config(9000)) == {
        "cluster": {"worker": ["node01:9000", "node02:9000"]},
        "task": {"type": "worker", "index": 1},
    }


def test_the_slurm_script_is_valid_bash_with_one_task_per_worker():
    script = (DEPLOY / "slurm.sbatch").read_text()
    subprocess.run(["bash", "-n", str(DEPLOY / "slurm.sbatch")], check=True)
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)", script, re.MULTILINE))
    assert options["nodes"] == "2" and options["ntasks-per-node"] == "1"
    assert options["signal"].startswith("TERM@") and "requeue" in options
    assert f"-m {PACKAGE}.train" in script and "distribute=multi_worker_mirrored" in script


def test_the_tfjob_manifest_has_what_the_training_operator_needs():
    job = yaml.safe_load((DEPLOY / "tfjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] >= 2 and worker["restartPolicy"] == "OnFailure"
    pod = worker["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # time to save on SIGTERM
    (container,) = pod["containers"]
    assert container["name"] == "tensorflow"  # the operator finds the container by this name
    assert container["ports"][0]["name"] == "tfjob-port"
    command = container["command"]
    assert command[:3] == ["python", "-m", f"{PACKAGE}.train"]
    cfg = load_config(command[3:])  # the arguments are a valid config
    assert cfg.distribute.strategy == "multi_worker_mirrored"
    mount = container["volumeMounts"][0]
    assert cfg.run_dir.startswith(mount["mountPath"] + "/")  # run_dir on the shared volume
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert mount["name"] in claims


@pytest.mark.slow
def test_the_slurm_script_trains_on_shards_and_resumes_bitwise_after_preemption(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(FAKE_SRUN.replace("PYTHON", sys.executable, 1))
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(sys.path),
        "PYTHON": sys.executable,
        "RUN_DIR": str(run_dir),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "test",
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NODELIST": "localhost",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.pop("TF_CONFIG", None)
    shards = tmp_path / "shards"
    subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.prepare", f"data.files={shards}", "task=regression"]
        + ["data.shards=2"],
        check=True,
        capture_output=True,
        env=env,
    )
    overrides = [
        "task=regression",
        *small("regression"),
        f"data.files={shards}",  # one shard per worker
        "deterministic=true",
        "train.steps=4000",
        "train.batch_size=32",
        "train.log_every_steps=20",
        "checkpoint.every_steps=1000",
    ]

    def submit(*extra):
        port = f"distribute.port_base={two_free_ports()}"
        command = ["bash", str(DEPLOY / "slurm.sbatch"), *overrides, port, *extra]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    job = submit()
    deadline = time.monotonic() + 300
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    srun_process = next(
        int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _is_srun(pid, str(srun))
    )
    os.kill(srun_process, signal.SIGTERM)  # Slurm's preemption: every task gets SIGTERM
    out, err = job.communicate(timeout=300)
    assert job.returncode == 143, err
    assert err.count("stopped by signal at step") == 2  # both workers, one checkpoint
    saved = sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    assert len(saved) == 1 and saved[0] != "ckpt-4000.index"

    step = int(saved[0].removeprefix("ckpt-").removesuffix(".index"))
    job = submit(f"train.steps={step + 40}")  # the requeued job: same run_dir
    out, err = job.communicate(timeout=600)
    assert job.returncode == 0, err
    assert err.count("resumed from") == 2
    finals = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(finals) == 2 and finals[0]["weights_sha256"] == finals[1]["weights_sha256"]
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["strategy"], run["num_workers"]) == ("multi_worker_mirrored", 2)

    # The same two workers, never preempted: the same weights, bit for bit.
    straight = launch(2, [*overrides, f"train.steps={step + 40}", f"run_dir={tmp_path / 'b'}"])
    outputs = [process.communicate(timeout=600)[0] for process in straight]
    assert [process.returncode for process in straight] == [0, 0]
    assert json.loads(outputs[0].splitlines()[-1])["weights_sha256"] == finals[0]["weights_sha256"]


def _is_srun(pid: str, path: str) -> bool:
    try:
        return path in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return False
