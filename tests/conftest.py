"""What the template's tests share: the option matrix, read from cookiecutter.json itself."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))

# One definition of "supported": the template's own list, which the hook and the baked
# project's run-time check also read.
UNSUPPORTED = [
    (rule["distribution_strategy"], rule["mixed_precision"])
    for rule in CONTEXT["_unsupported_combinations"]
]
SUPPORTED = [
    (strategy, precision)
    for strategy in CONTEXT["distribution_strategy"]
    for precision in CONTEXT["mixed_precision"]
    if (strategy, precision) not in UNSUPPORTED
]


def combo_id(combo):
    return "-".join(combo)


def run(command, cwd, timeout=900, env=None, check=True):
    """Runs a command; on failure shows its output in the assertion."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check:
        assert done.returncode == 0, (
            f"{' '.join(map(str, command))} exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )
    return done


def pip_install(project: Path, extras: str = "") -> None:
    """Installs a bake into this (shared) environment without downloading anything."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-build-isolation",
            "--no-deps",
            "-e",
            f"{project}{extras}",
        ],
        cwd=project,
    )


@pytest.fixture
def bake(cookies):
    """`bake(**answers)`: bakes with `answers` and asserts it succeeded."""

    def _bake(**answers):
        result = cookies.bake(extra_context=answers)
        assert result.exit_code == 0, result.exception
        assert result.exception is None
        return result.project_path

    return _bake
