"""Export: a `.keras` model and a SavedModel that serve the same outputs."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate


@pytest.fixture
def exported(make_config, tmp_path):
    cfg = make_config("train.steps=20")
    train_and_evaluate(cfg)
    return export(cfg)


def inputs():
    return np.random.default_rng(7).standard_normal((5, 8)).astype("float32")


def test_export_writes_keras_saved_model_and_run_json(exported):
    assert sorted(os.listdir(exported)) == ["model.keras", "run.json", "saved_model"]
    with open(os.path.join(exported, "run.json"), encoding="utf-8") as file:
        assert json.load(file)["config"]


def test_saved_model_serves_the_outputs_of_the_keras_model(exported):
    expected = keras.models.load_model(os.path.join(exported, "model.keras"))(inputs())
    served = tf.saved_model.load(os.path.join(exported, "saved_model"))
    outputs = served.signatures["serving_default"](tf.constant(inputs()))
    np.testing.assert_allclose(next(iter(outputs.values())), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_package_free_process_and_saved_model_cli_read_the_export(exported, tmp_path):
    expected = keras.models.load_model(os.path.join(exported, "model.keras"))(inputs()).numpy()
    np.save(tmp_path / "x.npy", inputs())
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({os.path.join(exported, 'saved_model')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "out = next(iter(served.signatures['serving_default'](tf.constant(x)).values()))\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, out.numpy())\n"
        "assert not [m for m in sys.modules if m.startswith('{{ cookiecutter.package_name }}')]\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-6)
    cli = shutil.which("saved_model_cli") or os.path.join(
        os.path.dirname(sys.executable), "saved_model_cli"
    )
    shown = subprocess.run(
        [
            cli,
            "show",
            "--dir",
            os.path.join(exported, "saved_model"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "shape: (-1, 8)" in shown and "tensorflow/serving/predict" in shown
