"""One loop for every strategy: replicas agree with one device; bad setups fail in one line."""

import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate

from ..conftest import noise_free
from .test_controller import weights_at

SHORT = ("train.steps=20", "checkpoint.every_steps=20")


def test_two_replicas_match_one_device_and_run_json_records_them(make_config, tmp_path, task):
    one, two = tmp_path / "one", tmp_path / "two"
    quiet = (*SHORT, *noise_free(task))
    train_and_evaluate(make_config(*quiet, run_dir=one, task=task))
    result = train_and_evaluate(
        make_config(
            *quiet, "distribute=mirrored", "distribute.cpu_devices=2", run_dir=two, task=task
        )
    )
    a, b = weights_at(one, 20), weights_at(two, 20)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert result["step"] == 20
    run = json.loads((two / "run.json").read_text())
    assert (run["strategy"], run["num_replicas"], run["num_workers"]) == ("mirrored", 2, 1)
    assert run["per_replica_batch_size"] == 16


def test_global_batch_not_divisible_by_replicas_is_refused(make_config):
    cfg = make_config("train.batch_size=33", "distribute=mirrored", "distribute.cpu_devices=2")
    with pytest.raises(RunError, match="train.batch_size=33: not divisible by the 2 replicas"):
        train_and_evaluate(cfg)


def test_tpu_on_a_machine_without_one_fails_in_one_line(make_config):
    with pytest.raises(RunError, match="distribute=tpu: no TPU found") as error:
        make_cluster(make_config("distribute=tpu").distribute)
    assert "\n" not in str(error.value)
