"""The README's table of supported versions says what pyproject.toml and the CI file do."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")


def lower_bounds():
    """{distribution: lower bound} of every dependency, extras included."""
    project = PYPROJECT["project"]
    requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    bounds = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9._-]+)>=([0-9.]+)", requirement)
        assert match, f"{requirement!r} has no lower bound for the lowest-versions job to test"
        bounds.setdefault(match[1].lower(), set()).add(match[2])
    return bounds


def table_row(name):
    """The cells of the README table row that starts with `name`."""
    section = README.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"the Supported versions table has no {name} row")


def ci_matrix():
    match = re.search(r"python-version: \[([^\]]*)\]", CI)
    assert match, "ci.yml has no Python matrix"
    return re.findall(r'"([0-9.]+)"', match[1])


def test_every_dependency_has_one_lower_bound():
    for name, bounds in lower_bounds().items():
        assert len(bounds) == 1, f"{name} is bounded by {sorted(bounds)} in different places"


def test_python_row_is_requires_python_and_the_ci_matrix():
    _, oldest, newest, where = table_row("Python")
    assert PYPROJECT["project"]["requires-python"] == f">={oldest}"
    matrix = ci_matrix()
    assert (matrix[0], matrix[-1]) == (oldest, newest)
    assert where.endswith(", ".join(matrix))


def test_tensorflow_and_keras_rows_are_the_lower_bounds():
    bounds = lower_bounds()
    assert bounds["tensorflow-cpu"] == bounds["tensorflow"] == {table_row("TensorFlow")[1]}
    assert bounds["keras"] == {table_row("Keras")[1]}


def test_the_lowest_job_installs_the_lower_bounds_on_the_oldest_python():
    lowest = CI.split("\n  lowest:", 1)[1]
    assert f'python-version: "{table_row("Python")[1]}"' in lowest
    assert "--resolution lowest-direct -e '.[dev]'" in lowest
    assert 'pytest -m "not slow"' in lowest


def test_every_command_is_a_console_script_whose_main_exists():
    # Read, not imported: this file also runs where another bake's package is installed.
    scripts = PYPROJECT["project"]["scripts"]
    modules = {target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()}
    commands = {"train", "evaluate", "export", "plot", "prepare", "launch", "bench", "check"}
    assert modules == commands
    for target in scripts.values():
        module, function = target.split(":")
        source = (ROOT / "src" / Path(*module.split("."))).with_suffix(".py")
        assert f"\ndef {function}(" in source.read_text(encoding="utf-8"), target
