"""Every version a bake declares is one it was tested on: the CI it writes and runs here.

The fast tests check the generated CI for every `python_requires`. The slow ones install the
default bake into fresh virtualenvs (uv, downloading from PyPI; its cache is shared, so a
second run reuses the wheels) with the oldest version of every direct dependency
(`--resolution lowest-direct`, what the bake's `lowest` CI jobs run) on the oldest and on the
newest Python it declares (their oldest versions differ: TensorFlow 2.20 is the oldest with
Python 3.13 wheels), lint the bake there and run its fast tests of every surface a dependency
reaches (`LOWEST_VERSIONS_RUN`). The newest versions on Python 3.11 are the main run's; the
newest versions on the other Pythons are the bake's CI's `test` jobs (each cost 5 minutes
here, and proves little the lowest runs on the same Pythons do not).
"""

import json
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import CONTEXT, run

PYTHONS = CONTEXT["_python_versions"]


def supported_from(oldest):
    return PYTHONS[PYTHONS.index(oldest) :]


@pytest.mark.parametrize("oldest", PYTHONS)
def test_ci_tests_every_declared_python_and_the_lowest_versions_on_the_oldest(bake, oldest):
    project = bake(python_requires=oldest)
    ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    assert ci["permissions"] == {"contents": "read"}
    assert set(ci["jobs"]) == {"lint", "test", "lowest"}
    for job in ("test", "lowest"):
        assert ci["jobs"][job]["strategy"]["matrix"]["python-version"] == supported_from(oldest)
    lowest = ci["jobs"]["lowest"]["steps"]
    setup = [step["with"] for step in lowest if step.get("uses", "").startswith("actions/setup-p")]
    matrix_python = "${{ matrix.python-version }}"
    assert setup == [
        {"python-version": matrix_python, "cache": "pip", "cache-dependency-path": ANY}
    ]
    commands = [step["run"] for step in lowest if "run" in step]
    assert "uv pip install --system --resolution lowest-direct -e '.[dev]'" in commands
    assert 'python -m pytest -m "not slow"' in commands
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={oldest}"
    readme = (project / "README.md").read_text()
    assert f"| Python | {oldest} | {PYTHONS[-1]} |" in readme
    # A one-Python matrix; the default bake's suite checks the rest. No conftest: it imports the
    # package, and this shared environment may hold another bake's.
    if oldest == PYTHONS[-1]:
        test = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest"]
        run([*test, "tests/test_supported_versions.py"], cwd=project)


def interpreter(version):
    """The newest pyenv CPython `version`.N here (or pythonX.Y on PATH); None if none."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = [
        path
        for path in (root / "versions").glob(f"{version}.*/bin/python")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", path.parents[1].name)
    ]
    if found:
        return str(max(found, key=lambda path: int(path.parents[1].name.split(".")[2])))
    return shutil.which(f"python{version}")


def installed_versions(python):
    code = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    found = json.loads(run([python, "-c", code], cwd=Path(python).parent).stdout)
    return {canonicalize_name(name): Version(version) for name, version in found.items()}


def requirements_of(metadata, extras):
    """The requirements `pip install .[extras]` asks for, the project's own extras expanded."""
    found = list(metadata["dependencies"])
    for extra in extras:
        for line in metadata["optional-dependencies"][extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(metadata["name"]):
                found += requirements_of({**metadata, "dependencies": []}, requirement.extras)
            else:
                found.append(line)
    return found


def declared_lower_bounds(project, python_version):
    """{name: lower bound} of every direct dependency of `.[dev]` this Python on Linux installs."""
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    environment = {"python_version": python_version, "sys_platform": "linux"}
    bounds = {}
    for line in requirements_of(metadata, ["dev"]):
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        (specifier,) = [spec for spec in requirement.specifier if spec.operator == ">="]
        bounds[canonicalize_name(requirement.name)] = Version(specifier.version)
    return bounds


@pytest.fixture(scope="module")
def default_project(cookies_session):
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return result.project_path


INSTALLS = {
    "lowest-oldest-python": (PYTHONS[0], "lowest-direct"),
    "lowest-newest-python": (PYTHONS[-1], "lowest-direct"),
}
# What the lowest versions run here: the bake's fast tests of every surface a dependency
# reaches, once each (not per task: `-m "not per_task"`). The rest of the fast suite is the
# project's own bookkeeping (run directories, storage failures, limits, threads, averages, the
# best checkpoint, actions, shards, bench) over the same calls; the main run (Python 3.11,
# newest versions) runs all of it on every task, and the bake's CI `lowest` jobs run all of it
# at the lowest versions on every declared Python.
LOWEST_VERSIONS_RUN = [
    "tests/components",  # Keras layers, losses, metrics, initializers, schedules, constraints
    "tests/tasks",  # each task's own tests: scikit-learn's digits, named outputs, the GAN
    "tests/test_models.py",
    "tests/test_data.py",
    "tests/test_export.py",  # SavedModel and .keras
    "tests/loop/test_trainer.py",  # the step under strategies and precision policies
    "tests/loop/test_precision.py",
    "tests/loop/test_distribute.py",
    "tests/loop/test_controller.py",  # the loop: checkpoints, protobuf's pointer file, tqdm
    "tests/test_config.py",  # Hydra, OmegaConf
    "tests/test_sweep.py",  # Hydra's sweepers, Optuna
    "tests/test_plot.py",  # matplotlib, TensorBoard's event reader
    "tests/test_notebook.py",  # nbclient, nbformat, ipykernel, IPython
    "tests/test_docs.py",  # mkdocs, mkdocs-material, mkdocstrings
    "tests/test_docstrings.py",
    "tests/test_supported_versions.py",
]


@pytest.mark.slow
@pytest.mark.minutes(5)
@pytest.mark.parametrize("version,resolution", INSTALLS.values(), ids=INSTALLS.keys())
def test_the_lowest_versions_install_lint_and_pass_the_tests_of_every_dependency(
    default_project, tmp_path, version, resolution
):
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} here (neither pyenv's versions nor python{version})")
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    run([*uv, "venv", "--quiet", "--python", python, str(venv)], cwd=tmp_path)
    venv_python = str(venv / "bin" / "python")
    install = ["pip", "install", "--quiet", "--python", venv_python, "--resolution", resolution]
    run([*uv, *install, "-e", f"{default_project}[dev]"], cwd=tmp_path, timeout=1800)
    if resolution == "lowest-direct":  # every lower bound on this Python is the version under test
        installed = installed_versions(venv_python)
        for name, bound in declared_lower_bounds(default_project, version).items():
            assert installed[name] == bound, f"{name}: declared >={bound}, got {installed[name]}"
        for lint in (["check", "."], ["format", "--check", "."]):
            run([str(venv / "bin" / "ruff"), *lint], cwd=default_project)
    suite = [venv_python, "-m", "pytest", "-m", "not slow and not per_task", "-q"]
    suite += ["-p", "no:cacheprovider", *LOWEST_VERSIONS_RUN]
    done = run(suite, cwd=default_project, timeout=2400)
    last = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", last) and "failed" not in last, done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.minutes(1)
@pytest.mark.parametrize("version", [PYTHONS[0], PYTHONS[-1]])
def test_the_gpu_extra_resolves_to_cuda_tensorflow_and_no_tensorflow_cpu(
    default_project, tmp_path, version
):
    # A resolution on Linux x86-64, nothing installed: what `pip install -e '.[gpu,tools]'`
    # would bring. tensorflow-cpu beside tensorflow would write the same package twice.
    compile_ = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-header"]
    compile_ += ["--python-version", version, "--python-platform", "x86_64-manylinux_2_28"]
    pinned = {}
    for extras in (["gpu", "tools"], ["dev"]):
        options = [f"--extra={extra}" for extra in extras]
        found = run([*compile_, *options, str(default_project / "pyproject.toml")], cwd=tmp_path)
        names = re.findall(r"^([A-Za-z0-9._-]+)==", found.stdout, re.MULTILINE)
        pinned[extras[0]] = {canonicalize_name(name) for name in names}
    assert {"tensorflow", "nvidia-cudnn-cu12"} <= pinned["gpu"]
    assert "tensorflow-cpu" not in pinned["gpu"]
    assert "tensorflow-cpu" in pinned["dev"]
    assert not {"tensorflow", "nvidia-cudnn-cu12"} & pinned["dev"]
