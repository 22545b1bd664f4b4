"""What the template's tests share: the option matrix, read from cookiecutter.json itself."""

import json
import os
import subprocess
import sys
import sysconfig
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


def install(project: Path) -> str:
    """Installs a bake into a virtualenv of its own; returns that virtualenv's python.

    The virtualenv is layered over this one, which holds every dependency (a `.pth` file adds
    its site-packages), so `pip install --no-deps -e` costs seconds and nothing downloads; and
    bakes that share a package name never see each other, so tests run side by side
    (`pytest -n 2`). A second call for the same project reuses it.
    """
    venv = project.parent / f"{project.name}.venv"
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=project.parent)
    site_packages = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=project.parent,
    ).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    Path(site_packages, "_shared_environment.pth").write_text(
        f"import site; site.addsitedir({shared!r})\n", encoding="utf-8"
    )
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-build-isolation"]
    run([*install, "--no-deps", "-e", str(project)], cwd=project)
    # The shared environment's commands (saved_model_cli, mkdocs...), run by this python.
    shared_bin = Path(sysconfig.get_paths()["scripts"])
    for script in shared_bin.iterdir():
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        lines = script.read_bytes().split(b"\n", 1)
        if len(lines) == 2 and lines[0].startswith(b"#!") and b"python" in lines[0]:
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + lines[1])
            target.chmod(0o755)
    return str(python)


@pytest.fixture
def bake(cookies):
    """`bake(**answers)`: bakes with `answers` and asserts it succeeded."""

    def _bake(**answers):
        result = cookies.bake(extra_context=answers)
        assert result.exit_code == 0, result.exception
        assert result.exception is None
        return result.project_path

    return _bake


def pytest_collection_modifyitems(items):
    """The longest tests first (`@pytest.mark.minutes(n)`, measured on 2 cores): `make test`
    runs on every core (`pytest -n`), and xdist hands tests out in this order, so the long ones
    start at once and the short ones fill the gaps at the end."""

    def minutes(item):
        marker = item.get_closest_marker("minutes")
        return marker.args[0] if marker else 0

    items.sort(key=minutes, reverse=True)  # stable: the rest keep their order
