"""Baking: the default and awkward answers render a complete, valid project."""

import ast
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import CONTEXT, TEMPLATE, run

EXPECTED_FILES = [
    "pyproject.toml",
    "README.md",
    "LICENSE",
    ".gitignore",
    "Makefile",
    "src/custom_tf_project/__init__.py",
    "src/custom_tf_project/train.py",
    "src/custom_tf_project/evaluate.py",
    "src/custom_tf_project/export.py",
    "src/custom_tf_project/config.py",
    "src/custom_tf_project/conf/config.yaml",
    "src/custom_tf_project/loop/trainer.py",
    "src/custom_tf_project/tasks/base.py",
    "src/custom_tf_project/tasks/regression.py",
    "src/custom_tf_project/tasks/image_classification.py",
    "src/custom_tf_project/components/losses.py",
    "src/custom_tf_project/models/residual_regressor.py",
    "src/custom_tf_project/models/conv_classifier.py",
    "tests/tasks/test_task_contract.py",
    "tests/conftest.py",
]


def rendered_text_files(project):
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".md", ".yaml", ".cfg", ".txt", ""}:
            yield path, path.read_text(encoding="utf-8")


def test_default_bake_has_the_project_layout(bake):
    project = bake()
    assert project.name == "custom-tf-project"
    for name in EXPECTED_FILES:
        assert (project / name).is_file(), name


def test_no_template_syntax_is_left_unrendered(bake):
    for path, text in rendered_text_files(bake()):
        assert "{{" not in text and "{%" not in text, path
        assert "cookiecutter." not in text, path


def test_every_python_file_of_the_bake_parses(bake):
    for path in bake().rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


AWKWARD_NAMES = {
    "quotes": 'Ada\'s "Quoted" Net',
    "unicode": "Zoë Ünïcødé Nets für Straße",
    "hyphens": "--my--hyphen-net--",
    "backslashes": "back\\slash\\ net \\",
    "triple-quotes": "x''' \"\"\" net",
}


@pytest.mark.parametrize("name", AWKWARD_NAMES.values(), ids=AWKWARD_NAMES.keys())
def test_awkward_names_derive_valid_names_and_parse(bake, name):
    project = bake(project_name=name, author_name=name, description=name)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == name
    assert pyproject["project"]["authors"][0]["name"] == name
    slug = pyproject["project"]["name"]
    package = slug.replace("-", "_")
    assert package.isidentifier() and package.isascii(), package
    assert (project / "src" / package / "__init__.py").is_file()
    assert name in (project / "README.md").read_text(encoding="utf-8")


def test_a_very_long_project_name_bakes_with_a_slug_of_at_most_64_characters(bake):
    project = bake(project_name="Deep " * 60)
    assert len(project.name) <= 64 and project.name.startswith("deep-deep")
    assert not project.name.endswith("-")


def test_projects_register_their_custom_objects_under_their_own_package_name(bake):
    project = bake(package_name="vlab")
    registry = (project / "src/vlab/components/_registry.py").read_text()
    assert 'PACKAGE = "vlab"' in registry


def test_slug_and_package_can_be_overridden(bake):
    project = bake(project_slug="vision-lab", package_name="vlab")
    assert project.name == "vision-lab"
    assert (project / "src" / "vlab" / "train.py").is_file()


def test_proprietary_license_ships_no_license_file(bake):
    project = bake(license="Proprietary")
    assert not (project / "LICENSE").exists()
    assert "license" not in tomllib.loads((project / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("license_name", ["MIT", "BSD-3-Clause"])
def test_open_licenses_carry_the_author(bake, license_name):
    project = bake(license=license_name, author_name="Grace Hopper")
    assert "Grace Hopper" in (project / "LICENSE").read_text()
    assert (
        tomllib.loads((project / "pyproject.toml").read_text())["project"]["license"]
        == license_name
    )


@pytest.mark.parametrize("strategy", ["none", "mirrored", "multi_worker_mirrored", "tpu"])
def test_strategy_option_sets_the_default_config(bake, strategy):
    config = bake(distribution_strategy=strategy) / "src/custom_tf_project/conf/config.yaml"
    assert f"distribute: {strategy}" in config.read_text()


@pytest.mark.parametrize("task", CONTEXT["default_task"])
def test_default_task_option_sets_the_default_config_and_ships_every_task(bake, task):
    project = bake(default_task=task)
    config = project / "src/custom_tf_project/conf/config.yaml"
    assert f"task: {task}" in config.read_text()
    for module in CONTEXT["default_task"]:
        assert (project / f"src/custom_tf_project/tasks/{module}.py").is_file()


def test_bakes_of_each_default_task_differ_only_where_the_default_task_is_named(bake):
    # Why a bake of another default_task needs only its own fast suite with the per-task tests
    # on that task (tests/test_baked_projects.py): only the lines that name the default task
    # differ, in the files whose template names it.
    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    naming = {
        str(path.relative_to(source)).replace("{{cookiecutter.package_name}}", "custom_tf_project")
        for path in source.rglob("*")
        if path.is_file() and b"cookiecutter.default_task" in path.read_bytes()
    }
    assert "src/custom_tf_project/conf/config.yaml" in naming
    default, *others = CONTEXT["default_task"]
    reference = bake(default_task=default)
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    for task in others:
        project = bake(default_task=task)
        assert sorted(p.relative_to(project) for p in project.rglob("*") if p.is_file()) == files
        for path in files:
            ours, theirs = (
                root.joinpath(path).read_bytes().splitlines() for root in (reference, project)
            )
            if ours != theirs:
                assert str(path) in naming and len(ours) == len(theirs), path
                for a, b in zip(ours, theirs):
                    assert a == b or a.replace(default.encode(), task.encode()) == b, (path, a, b)


@pytest.mark.parametrize("kit", ["none", "solutions", "exercises"])
def test_bake_passes_ruff_with_its_own_configuration(bake, kit):
    project = bake(starter_kit=kit)
    ruff = Path(sys.executable).parent / "ruff"
    run([ruff, "check", "."], cwd=project)
    run([ruff, "format", "--check", "."], cwd=project)


def test_ci_workflow_runs_lint_and_tests_with_least_privilege_and_pip_cache(bake):
    project = bake()
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "ruff check" in commands and "pytest" in commands
    assert all(s["with"]["cache"] == "pip" for s in steps if "setup-python" in s.get("uses", ""))
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format"} <= ids
