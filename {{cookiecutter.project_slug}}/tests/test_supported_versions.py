"""The README's table of supported versions says what pyproject.toml and the CI file do."""

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")


def extra_lines(extras):
    """The requirement lines of `extras`, the project's own extras (`dev` is `cpu` and
    `tools`) expanded."""
    project = PYPROJECT["project"]
    lines = []
    for extra in extras:
        for line in project["optional-dependencies"][extra]:
            requirement = Requirement(line)
            own = requirement.name == project["name"]
            lines += extra_lines(sorted(requirement.extras)) if own else [line]
    return lines


def requirements(extras, python, platform="linux"):
    """The requirements `pip install .[extras]` asks for on `python` and `platform`."""
    environment = {"python_version": python, "sys_platform": platform, "extra": ""}
    lines = PYPROJECT["project"]["dependencies"] + extra_lines(extras)
    found = [Requirement(line) for line in lines]
    return [r for r in found if r.marker is None or r.marker.evaluate(environment)]


def lower_bounds(python, platform="linux"):
    """{distribution: lower bound} of every dependency on `python`, extras included."""
    bounds = {}
    every_extra = PYPROJECT["project"]["optional-dependencies"]
    for requirement in requirements(every_extra, python, platform):
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert lower, f"{requirement} has no lower bound for the lowest-versions job to test"
        bounds.setdefault(requirement.name.lower(), set()).update(lower)
    return bounds


def table_row(name):
    """The cells of the README table row that starts with `name`."""
    section = README.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"the Supported versions table has no {name} row")


def ci_matrix(job):
    match = re.search(r"python-version: \[([^\]]*)\]", CI.split(f"\n  {job}:", 1)[1])
    assert match, f"ci.yml's {job} job has no Python matrix"
    return re.findall(r'"([0-9.]+)"', match[1])


def test_every_dependency_has_one_lower_bound_on_each_python():
    for python in ci_matrix("test"):
        for platform in ("linux", "darwin", "win32"):
            for name, bounds in lower_bounds(python, platform).items():
                assert len(bounds) == 1, f"{name} is bounded by {sorted(bounds)} on {python}"


def test_python_row_is_requires_python_and_the_ci_matrices():
    _, oldest, newest, where = table_row("Python")
    assert PYPROJECT["project"]["requires-python"] == f">={oldest}"
    matrix = ci_matrix("test")
    assert (matrix[0], matrix[-1]) == (oldest, newest)
    assert where.endswith(", ".join(matrix))
    assert ci_matrix("lowest") == matrix


def test_tensorflow_row_is_each_pythons_lower_bound_and_keras_row_the_one_bound():
    oldest = dict(cell.split(": ") for cell in table_row("TensorFlow")[1].split(", "))
    assert list(oldest) == ci_matrix("test")
    for python, version in oldest.items():
        assert lower_bounds(python)["tensorflow-cpu"] == {version}
        assert lower_bounds(python, "darwin")["tensorflow"] == {version}
        assert lower_bounds(python)["keras"] == {table_row("Keras")[1]}


def test_gpu_brings_cuda_tensorflow_and_dev_cpu_tensorflow_never_both():
    for python in ci_matrix("test"):
        gpu = {r.name: r for r in requirements(["gpu"], python)}
        assert gpu["tensorflow"].extras == {"and-cuda"}
        dev = {r.name for r in requirements(["dev"], python)}
        assert "tensorflow-cpu" not in gpu and "tensorflow" not in dev
        assert {"tensorflow-cpu", "pytest", "ruff"} <= dev


def test_the_lowest_jobs_install_the_lower_bounds_on_every_python():
    lowest = CI.split("\n  lowest:", 1)[1]
    each_python = "{ matrix.python-version }".join(["${", "}"])  # no Jinja braces in a bake
    assert f"python-version: {each_python}" in lowest
    assert "--resolution lowest-direct -e '.[dev]'" in lowest
    assert 'pytest -m "not slow"' in lowest


def test_every_command_is_a_console_script_whose_main_exists():
    # Read, not imported: this file also runs where another bake's package is installed.
    scripts = PYPROJECT["project"]["scripts"]
    modules = {target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()}
    commands = {"train", "evaluate", "export", "plot", "prepare", "launch", "bench"}
{%- if cookiecutter.starter_kit != "none" %}
    commands.add("check")  # a teaching kit's grader
{%- endif %}
    assert modules == commands
    for target in scripts.values():
        module, function = target.split(":")
        source = (ROOT / "src" / Path(*module.split("."))).with_suffix(".py")
        assert f"\ndef {function}(" in source.read_text(encoding="utf-8"), target
