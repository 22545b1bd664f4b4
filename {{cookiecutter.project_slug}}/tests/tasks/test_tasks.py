"""What every shipped task provides, and the rule that only tasks know a task."""

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.core.config_store import ConfigStore

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import leaves as data_leaves
from {{ cookiecutter.package_name }}.data import map_arrays, save_npz
from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.loop.outputs import TaskLoss, task_metrics
from {{ cookiecutter.package_name }}.tasks.base import Task, make_task, shipped_tasks, task_modules

from ..conftest import TASKS, python_output, task_class_of

SOURCE = Path(package.__file__).parent


def test_every_task_module_defines_a_task_named_after_it_and_is_an_option():
    assert {"image_classification", "regression"} <= set(shipped_tasks())  # the shipped ones
    assert shipped_tasks() == task_modules()  # tasks/<name>.py is `task=<name>`
    options = {name.removesuffix(".yaml") for name in ConfigStore.instance().list("task")}
    assert set(shipped_tasks()) <= options
    assert set(TASKS) == set(shipped_tasks())  # the shared tests run on every one


def test_every_task_keeps_the_contract_of_tasks_base(task):
    """What `tasks/base.py` says a task must provide, checked through the interface only."""
    cls = task_class_of(task)
    assert cls.make_arrays is not Task.make_arrays, f"task={task}: no make_arrays"
    if not cls.has_own_step():  # the reference step needs the model and its loss
        for method in ("build_model", "build_loss"):
            assert getattr(cls, method) is not getattr(Task, method), f"task={task}: no {method}"
    keys = {field.name for field in dataclasses.fields(cls.config_class)}
    assert set(cls.identity_keys) <= keys, f"task={task}: identity_keys not in its config"
    cfg = load_config([f"task={task}", *cls.small_overrides, *cls.noise_free_overrides])
    built = make_task(cfg)
    arrays = built.arrays()
    x = map_arrays(lambda a: a[:5], arrays.x_train)
    y = map_arrays(lambda a: a[:5], arrays.y_train)
    models = built.build_models()
    assert models and all(isinstance(name, str) for name in models), f"task={task}: models"
    if len(models) == 1:
        next(iter(models.values()))(x)  # the loop builds a single model on a batch
    groups = built.optimizer_variables(models)
    assert groups and all(groups.values()), f"task={task}: every optimizer has variables"
    assert set(cfg.task.optimizers) <= set(groups), f"task={task}: settings of no optimizer"
    if not cls.has_own_step():
        predictions = models["model"](x)
        task_loss = TaskLoss(built.build_loss(reduction=None), built.loss_weights(), task)
        task_loss.check_outputs(predictions, y, task)
        per_example = task_loss(y, predictions)
        assert tuple(per_example.shape) == (5,), f"task={task}: one loss per example"
        names = [metric.name for metric in task_metrics(built, task_loss)]
        assert len(set(names)) == len(names) and "loss" not in names, names
    served = built.serve(built.serving_model(models), x)
    assert isinstance(served, dict) and served, f"task={task}: serve returns named tensors"


def test_every_task_selects_its_own_keys(task):
    cfg = load_config([f"task={task}"])
    assert type(make_task(cfg)).name == task
    assert cfg.task._target_.endswith("Task")


def test_task_data_is_deterministic_from_the_seed(task):
    first = make_task(load_config([f"task={task}", "seed=1"])).arrays()
    again = make_task(load_config([f"task={task}", "seed=1"])).arrays()
    other = make_task(load_config([f"task={task}", "seed=2"])).arrays()
    leaves = [
        dict(pair for field in a._fields for pair in data_leaves(getattr(a, field), field))
        for a in (first, again, other)
    ]
    assert leaves[0].keys() == leaves[1].keys()
    for name in leaves[0]:
        np.testing.assert_array_equal(leaves[0][name], leaves[1][name], err_msg=name)
    assert any(not np.array_equal(leaves[0][name], leaves[2][name]) for name in leaves[0])


def cut(nest, rows=None, features=None):
    """Every array of `nest` cut to `rows` (a slice) and, if given, its features to `features`."""
    rows = slice(None) if rows is None else rows
    return map_arrays(lambda a: a[rows] if features is None else a[rows][:, features], nest)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a._replace(y_train=cut(a.y_train, slice(-1))),
            "x_train.* has .* rows but y_train.* has",
        ),
        (
            lambda a: a._replace(x_test=cut(a.x_test, slice(0)), y_test=cut(a.y_test, slice(0))),
            "x_test is empty",
        ),
        (
            lambda a: a._replace(x_test=cut(a.x_test, features=slice(1))),
            "both splits must have the same shape",
        ),
    ],
    ids=["lengths-differ", "empty-split", "shapes-differ"],
)
def test_inconsistent_npz_is_one_line_naming_the_file(tmp_path, task, change, message):
    arrays = change(make_task(load_config([f"task={task}"])).arrays())
    path = tmp_path / "bad.npz"
    save_npz(path, arrays)
    cfg = load_config([f"task={task}", f"data.path={path}"])
    with pytest.raises(RunError, match=f"data.path={re.escape(str(path))}: .*{message}") as error:
        make_task(cfg).arrays(cfg.data.path)
    assert "\n" not in str(error.value)


def imports_tensorflow_at_the_top(task):
    """Whether `tasks/<task>.py` imports Keras or TensorFlow outside its functions."""
    tree = ast.parse((SOURCE / "tasks" / f"{task}.py").read_text(encoding="utf-8"))
    names = [
        alias.name
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ] + [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    return any(name.split(".")[0] in ("keras", "tensorflow") for name in names)


def test_config_check_imports_only_the_selected_task_and_no_tensorflow_for_a_lazy_one():
    lazy = [name for name in TASKS if not imports_tensorflow_at_the_top(name)]
    assert {"regression", "image_classification"} <= set(lazy)  # the shipped ones stay fast
    code = (
        "import sys; from {{ cookiecutter.package_name }}.config import load_config; "
        f"[load_config(['task=' + name]) for name in {lazy!r}]; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, "
        "sorted(m.rsplit('.', 1)[1] for m in sys.modules if '.tasks.' in m))"
    )
    out = python_output(code)
    assert out.strip() == f"False False {sorted(['base', *lazy])!r}"


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
        SOURCE / name
        for name in TASK_FREE
        if (SOURCE / name).is_file()  # check.py: teaching kits only
    ]
    assert len(files) > len(TASK_FREE)
    for path in files:
        for module in imported_modules(path):
            name = module.lstrip(".")
            assert name == "tasks.base" or not name.startswith(TASK_MODULES), (path, module)
            assert name != "components", (path, module)  # the package would import them all
