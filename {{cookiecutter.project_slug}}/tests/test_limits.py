"""Limits are refused before they crash: a memory limit too low for TensorFlow's threads, and a
sweep under a clock that does not move (an `.npz` larger than memory: `test_data.py`; a run_dir
too long for its file system: `test_storage.py`)."""

import os
import resource
import subprocess
import sys
import time

from {{ cookiecutter.package_name }}.cli import address_space_refusal, run

PACKAGE = "{{ cookiecutter.package_name }}"


def test_a_memory_limit_too_low_for_tensorflow_is_one_line_before_it_starts(tmp_path):
    def low_limit():  # `ulimit -v 1500000`: TensorFlow's thread pools aborted the process
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.train", f"run_dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=low_limit,
    )
    assert done.returncode == 2, done.stderr
    cpus = len(os.sched_getaffinity(0))
    assert done.stderr.strip() == f"error: {address_space_refusal(1_500_000_000, cpus)}"
    assert done.stderr.startswith("error: the memory limit (ulimit -v) allows 1.5 GB of address")
    assert not (tmp_path / "run").exists()


def test_the_needed_address_space_grows_with_the_cpus():
    assert address_space_refusal(2_300_000_000, cpus=1) is None  # 2.25 GB needed
    assert "needs about 2.4 GB to start its threads on 2 CPUs" in address_space_refusal(
        2_300_000_000, cpus=2
    )


def test_a_sweep_under_a_frozen_clock_is_refused_before_any_job(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    monkeypatch.setattr(time, "perf_counter", lambda: 5.0)
    sweep = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    assert run("train", ran.append, sweep) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the clock does not move (time.time and time.perf_counter did not advance over 2 "
        "ms): a sweep times its jobs and names its directory by it; set the system clock going "
        "(or faketime's rate) and run the sweep again"
    )
    assert ran == [] and not (tmp_path / "sweep").exists()
