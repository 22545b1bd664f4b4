"""What every shipped task provides, and the rule that only tasks know a task."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.core.config_store import ConfigStore

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.tasks.base import make_task, shipped_tasks

from ..conftest import TASKS, python_output

SOURCE = Path(package.__file__).parent


def test_every_shipped_task_is_an_option_and_has_a_shrunk_test_config():
    assert shipped_tasks() == ["image_classification", "regression"]
    options = {name.removesuffix(".yaml") for name in ConfigStore.instance().list("task")}
    assert set(shipped_tasks()) <= options
    assert set(TASKS) == set(shipped_tasks())  # conftest.TASK_SMALL covers every one


def test_every_task_selects_its_own_keys(task):
    cfg = load_config([f"task={task}"])
    assert type(make_task(cfg)).name == task
    assert cfg.task._target_.endswith("Task")


def test_task_data_is_deterministic_from_the_seed(task):
    first = make_task(load_config([f"task={task}", "seed=1"])).arrays()
    again = make_task(load_config([f"task={task}", "seed=1"])).arrays()
    other = make_task(load_config([f"task={task}", "seed=2"])).arrays()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.y_train, other.y_train)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a._replace(y_train=a.y_train[:-1]), "x_train has .* rows but y_train has"),
        (lambda a: a._replace(x_test=a.x_test[:0], y_test=a.y_test[:0]), "x_test is empty"),
        (lambda a: a._replace(x_test=a.x_test[:, :4]), "both splits must have the same shape"),
    ],
    ids=["lengths-differ", "empty-split", "shapes-differ"],
)
def test_inconsistent_npz_is_one_line_naming_the_file(tmp_path, task, change, message):
    arrays = change(make_task(load_config([f"task={task}"])).arrays())
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays._asdict())
    cfg = load_config([f"task={task}", f"data.path={path}"])
    with pytest.raises(RunError, match=f"data.path={re.escape(str(path))}: .*{message}") as error:
        make_task(cfg).arrays(cfg.data.path)
    assert "\n" not in str(error.value)


def test_config_check_of_every_task_imports_no_tensorflow():
    code = (
        "import sys; from {{ cookiecutter.package_name }}.config import load_config; "
        f"[load_config(['task=' + name]) for name in {list(TASKS)!r}]; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = python_output(code)
    assert out.strip() == "False False"


# Infrastructure that must never know a task: it imports the interface (`tasks.base`) only.
TASK_FREE = ["loop", "evaluate.py", "export.py", "plot.py", "bench.py", "check.py", "cli.py"]
TASK_MODULES = ("tasks.", "models", "components.losses", "components.metrics", "components.layers")


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            yield from (f"{base}.{alias.name}" if not node.module else base for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_loop_and_entry_points_import_no_task_model_loss_or_metric():
    files = [p for name in TASK_FREE for p in sorted((SOURCE / name).glob("*.py"))] + [
        SOURCE / name for name in TASK_FREE if name.endswith(".py")
    ]
    assert len(files) > len(TASK_FREE)
    for path in files:
        for module in imported_modules(path):
            name = module.lstrip(".")
            assert name == "tasks.base" or not name.startswith(TASK_MODULES), (path, module)
            assert name != "components", (path, module)  # the package would import them all
