"""The task files of docs/custom-step.md keep every promise of a run with their own steps.

Each example (`docs/examples/<name>.py`) is imported as `tasks/<name>.py` would be; the slow
tests drop it into a copy of the package's `tasks/`, its only change, and run it as a user
would: trained, killed and resumed bitwise, on 2 replicas, in bfloat16 and in float16 with a
loss scale for each optimizer, evaluated, exported and served.
"""

import importlib.util
import shutil
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.evaluate import evaluate
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics
from {{ cookiecutter.package_name }}.tasks.base import make_task

from ..conftest import noise_free
from ..loop.test_controller import weights_at
from ..test_export import inputs, serve
from ..test_fault_tolerance import final_digest, finish, start, wait_for_step

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "docs" / "examples"
EXAMPLES = sorted(path.stem for path in EXAMPLES_DIR.glob("*.py"))
PACKAGE = package.__name__


def load_example(name: str):
    """Imports `docs/examples/<name>.py` as the module `tasks/<name>.py` would be: its task is
    then `task=<name>`."""
    module_name = f"{PACKAGE}.tasks.{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(params=EXAMPLES)
def example(request):
    load_example(request.param)
    return request.param


def test_the_page_includes_every_example_and_each_is_a_task_named_after_its_file():
    page = (EXAMPLES_DIR.parent / "custom-step.md").read_text(encoding="utf-8")
    assert EXAMPLES == ["distillation", "vae"]
    for name in EXAMPLES:
        assert f'--8<-- "docs/examples/{name}.py"' in page
        module = load_example(name)
        assert [cls.name for cls in vars(module).values() if getattr(cls, "name", "") == name]
        assert module.__dict__[f"{name.capitalize()}Task"].has_own_step()


def test_each_example_trains_evaluates_exports_and_serves(make_config, example):
    cfg = make_config("train.steps=60", task=example)
    train_and_evaluate(cfg)
    records = read_metrics(cfg.run_dir)
    assert records[-1]["loss"] < 0.8 * records[0]["loss"], [r["loss"] for r in records]
    evaluated = evaluate(cfg)
    assert evaluated["eval_loss"] == pytest.approx(records[-1]["eval_loss"], rel=1e-6)
    path = export(cfg)
    x = inputs(cfg)
    model = keras.models.load_model(f"{path}/model.keras")
    expected = make_task(cfg).serve(model, x)
    served = serve(path, x)
    assert served.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-6)


def test_the_distilled_student_agrees_with_its_teacher_which_stays_as_built(make_config):
    load_example("distillation")
    cfg = make_config("train.steps=200", task="distillation")
    train_and_evaluate(cfg)
    evaluations = [r for r in read_metrics(cfg.run_dir) if "eval_agreement" in r]
    first, last = evaluations[0], evaluations[-1]
    # 8 classes: a student that ignores the teacher agrees on about 1 in 8
    assert last["eval_agreement"] > max(0.5, first["eval_agreement"]), (first, last)
    reader = tf.train.load_checkpoint(f"{cfg.run_dir}/checkpoints")
    teacher = sorted(  # kernel, bias of the first layer, then of the second
        name for name in reader.get_variable_to_shape_map() if name.startswith("model_teacher/")
    )
    built = make_task(cfg).teacher_weights()
    assert len(teacher) == len(built) == 4
    for name, weights in zip(teacher, built):  # in the checkpoint, never updated
        np.testing.assert_array_equal(reader.get_tensor(name), weights, err_msg=name)


def test_the_vae_descends_its_reconstruction_and_the_kl_term_of_its_model(make_config):
    load_example("vae")
    cfg = make_config("train.steps=100", task="vae")
    train_and_evaluate(cfg)
    records = read_metrics(cfg.run_dir)
    assert records[-1]["reconstruction"] < 0.5 * records[0]["reconstruction"]
    assert all(r["kl"] > 0 for r in records)  # the add_loss term is read and logged
    for r in records:
        assert r["loss"] == pytest.approx(r["reconstruction"] + r["kl"], rel=1e-5)


# -- slow: every promise, as a user would run it -------------------------------------------------
@pytest.fixture
def dropped_in(tmp_path, monkeypatch, example):
    """A copy of the package with the example in its `tasks/`, first on the subprocesses' path."""
    source = Path(package.__file__).parent
    copy = tmp_path / "src" / PACKAGE
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES_DIR / f"{example}.py", copy / "tasks" / f"{example}.py")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    return example


KILLED_RUN = ("train.steps=600", "checkpoint.every_steps=100", "eval.every_steps=300")


@pytest.mark.slow
def test_each_example_dropped_into_tasks_resumes_bitwise_after_a_kill(tmp_path, dropped_in):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    code, _, err = finish(start(straight, *KILLED_RUN, task=dropped_in))
    assert code == 0, err
    process = start(killed, *KILLED_RUN, task=dropped_in)
    wait_for_step(process, killed, 250, timeout=600)  # start-up is slow on a busy machine
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = start(killed, *KILLED_RUN, task=dropped_in)
    _, err = resumed.communicate(timeout=900)  # start-up is slow on a busy machine
    assert resumed.returncode == 0, err
    assert "next step" in err  # it resumed
    assert final_digest(killed) == final_digest(straight)


RUNS = {
    "one": [],
    "two": ["distribute=mirrored", "distribute.cpu_devices=2"],
    "bfloat16": ["precision=mixed_bfloat16"],
    "float16": ["precision=mixed_float16"],
}


@pytest.mark.slow
def test_each_example_trains_on_two_replicas_and_in_both_mixed_precisions(
    make_config, tmp_path, example
):
    quiet = noise_free(example)  # 2 replicas draw other noise than one device
    configs = {
        label: make_config(*quiet, *overrides, run_dir=tmp_path / label, task=example)
        for label, overrides in RUNS.items()
    }
    for label, cfg in configs.items():
        train_and_evaluate(cfg)
        records = read_metrics(cfg.run_dir)
        assert records[-1]["loss"] < 0.8 * records[0]["loss"], (label, records)
    one, two = (weights_at(Path(configs[label].run_dir), 40) for label in ("one", "two"))
    assert one.keys() == two.keys()
    # 40 Adam steps on sums taken in another order (the VAE's KL per replica). Adam divides by
    # the root of each gradient's second moment, so an element whose gradient is near zero can
    # move by a good part of one step (the learning rate, 2e-3) on rounding alone; a wrong
    # average (a doubled gradient, a model loss counted per replica) moves weights by many steps.
    for name in one:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-3, atol=2e-4, err_msg=name)
    # float16: every optimizer scales its loss by a dynamic scale of its own, checkpointed
    float16 = configs["float16"]
    names = tf.train.load_checkpoint(f"{float16.run_dir}/checkpoints")
    scaled = {
        name.split("/")[0].removeprefix("optimizer_")
        for name in names.get_variable_to_shape_map()
        if name.endswith("dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE")
    }
    task = make_task(float16)
    assert scaled == set(task.optimizer_variables(task.build_models()))
