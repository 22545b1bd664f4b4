"""A `.keras` file with the custom objects reloads in a fresh process with identical outputs."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.components.losses import HuberLoss
from {{ cookiecutter.package_name }}.components.metrics import StreamingMAE
from {{ cookiecutter.package_name }}.models import ResidualRegressor

RELOAD = """
import sys
{imports}
import numpy as np

model = keras.models.load_model(sys.argv[1])
assert type(model).__name__ == "ResidualRegressor", type(model)
assert type(model.loss).__name__ == "HuberLoss", type(model.loss)
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(np.load(sys.argv[2]))))
"""


@pytest.mark.slow  # a fresh Python process pays TensorFlow's start-up
@pytest.mark.parametrize(
    "imports",
    ["import {package}\nimport keras", "import keras\nimport {package}"],
    ids=["package-then-keras", "keras-then-package"],
)
def test_saved_model_reloads_in_a_fresh_process_with_identical_outputs(tmp_path, imports):
    """`import <package>` is all a fresh process needs, whichever it imports first."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    model = ResidualRegressor(hidden_units=16, seed=0)
    model.compile(optimizer="adam", loss=HuberLoss(threshold=0.5), metrics=[StreamingMAE()])
    model.fit(x, x[:, :1] ** 2, batch_size=16, epochs=1, verbose=0)  # weights move from init
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "inputs.npy", x)

    source_root = str(Path(package.__file__).resolve().parents[1])
    python_path = os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": python_path}
    code = RELOAD.format(imports=imports.format(package=package.__name__))
    outputs_path = tmp_path / "outputs.npy"
    completed = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "inputs.npy"), str(outputs_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    np.testing.assert_array_equal(np.load(outputs_path), keras.ops.convert_to_numpy(model(x)))
