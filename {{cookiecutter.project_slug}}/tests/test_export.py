"""Export: a `.keras` model and a SavedModel serving what the task serves, for every task."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import map_arrays
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.tasks.base import make_task


@pytest.fixture
def exported(make_config, task):
    cfg = make_config("train.steps=20", task=task)
    train_and_evaluate(cfg)
    return cfg, export(cfg)


def inputs(cfg):
    return map_arrays(lambda a: a[:5], make_task(cfg).arrays().x_test)


def serve(path, x):
    """What the SavedModel serves for `x`: one input is `inputs`, named ones go by their names."""
    served = tf.saved_model.load(os.path.join(path, "saved_model"))
    named = x if isinstance(x, dict) else {"inputs": x}
    outputs = served.signatures["serving_default"](**{k: tf.constant(v) for k, v in named.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def test_export_writes_keras_saved_model_and_run_json(exported):
    _, path = exported
    assert sorted(os.listdir(path)) == ["model.keras", "run.json", "saved_model"]
    with open(os.path.join(path, "run.json"), encoding="utf-8") as file:
        assert json.load(file)["config"]["task"]["_target_"]


def test_saved_model_serves_what_the_task_serves_from_the_keras_model(exported):
    cfg, path = exported
    x = inputs(cfg)
    model = keras.models.load_model(os.path.join(path, "model.keras"))
    expected = make_task(cfg).serve(model, x)
    served = serve(path, x)
    assert served.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-6)


def test_classifier_serves_probabilities_and_the_class_ids_of_its_logits(make_config, tmp_path):
    cfg = make_config("train.steps=20", task="image_classification")
    train_and_evaluate(cfg)
    path = export(cfg)
    x = inputs(cfg)
    logits = keras.models.load_model(os.path.join(path, "model.keras"))(x).numpy()
    served = serve(path, x)
    assert served["class_ids"].dtype == np.int32
    np.testing.assert_array_equal(served["class_ids"], logits.argmax(-1))
    np.testing.assert_allclose(served["probabilities"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        served["probabilities"], tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-7
    )


@pytest.mark.slow
def test_package_free_process_and_saved_model_cli_read_the_export(exported, tmp_path):
    cfg, path = exported
    expected = serve(path, inputs(cfg))
    np.save(tmp_path / "x.npy", inputs(cfg))
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({os.path.join(path, 'saved_model')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "out = served.signatures['serving_default'](inputs=tf.constant(x))\n"
        f"np.savez({str(tmp_path / 'y.npz')!r}, "
        "**dict((name, value.numpy()) for name, value in out.items()))\n"
        "assert not [m for m in sys.modules if m.startswith('{{ cookiecutter.package_name }}')]\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
    with np.load(tmp_path / "y.npz") as outside:
        assert sorted(outside.files) == sorted(expected)
        for name in expected:
            np.testing.assert_array_equal(outside[name], expected[name])
    cli = shutil.which("saved_model_cli") or os.path.join(
        os.path.dirname(sys.executable), "saved_model_cli"
    )
    shown = subprocess.run(
        [
            cli,
            "show",
            "--dir",
            os.path.join(path, "saved_model"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    shape = ", ".join(str(size) for size in (-1, *inputs(cfg).shape[1:]))
    assert f"shape: ({shape})" in shown and "tensorflow/serving/predict" in shown


def test_an_interrupted_export_leaves_the_previous_one_whole(make_config, monkeypatch, capsys):
    cfg = make_config("train.steps=20")
    train_and_evaluate(cfg)
    path = export(cfg)
    before = {name: os.path.getmtime(os.path.join(path, name)) for name in os.listdir(path)}
    train_and_evaluate(make_config("train.steps=40"))

    def killed(*args, **kwargs):  # Ctrl-C after the model and the SavedModel are written
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfile", killed)
    with pytest.raises(KeyboardInterrupt):
        export(make_config("train.steps=40"))
    # the step-20 export, all three parts, and nothing half-written beside it
    assert {n: os.path.getmtime(os.path.join(path, n)) for n in os.listdir(path)} == before
    assert not [name for name in os.listdir(cfg.run_dir) if name.startswith(".export")]
    monkeypatch.undo()
    capsys.readouterr()
    export(make_config("train.steps=40"))
    assert "exported step 40" in capsys.readouterr().out
    assert sorted(os.listdir(path)) == ["model.keras", "run.json", "saved_model"]


def test_an_export_path_taken_by_a_file_is_one_line_and_the_file_stays(
    make_config, tmp_path, capsys
):
    from {{ cookiecutter.package_name }}.cli import run

    train_and_evaluate(make_config("train.steps=20"))
    (tmp_path / "run" / "export").write_text("notes")
    assert run("export", export, [f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {tmp_path / 'run' / 'export'}: is a file, not an export directory; move it away"
    )
    assert (tmp_path / "run" / "export").read_text() == "notes"
