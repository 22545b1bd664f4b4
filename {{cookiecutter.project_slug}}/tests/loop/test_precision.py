"""Mixed precision: float32 variables, float32 losses, loss scaling only for float16."""

import json

import keras
import numpy as np
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import map_arrays
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.trainer import Trainer
from {{ cookiecutter.package_name }}.tasks.base import make_task

from ..conftest import has_own_step


def trainer_for(make_config, policy, task):
    cfg = make_config(f"precision={policy}", task=task)
    built = make_task(cfg)
    source = built.source(cfg.data)
    return Trainer(cfg, make_cluster(cfg.distribute), built, source), source


def test_bfloat16_computes_low_and_keeps_float32_variables_and_losses(make_config, task):
    trainer, source = trainer_for(make_config, "mixed_bfloat16", task)
    for model in trainer.models.values():
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        layers = list(model._flatten_layers(include_self=False))
        assert any(layer.compute_dtype == "bfloat16" for layer in layers)
    if trainer.loss_fn is not None:
        x, y = (
            map_arrays(lambda a: a[:64], nest)
            for nest in (source.example_inputs, source.example_targets)
        )
        per_example = trainer.loss_fn(y, trainer.model(x))  # whatever dtype the outputs have
        assert per_example.dtype == tf.float32 and tuple(per_example.shape) == (64,)
    for optimizer in trainer.optimizers.values():
        assert not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(metric.dtype == "float32" for metric in trainer.train_metrics.values())


def test_float16_skips_a_step_with_non_finite_gradients(make_config, task):
    trainer, _ = trainer_for(make_config, "mixed_float16", task)
    name, optimizer = next(iter(trainer.optimizers.items()))
    variables = trainer.optimizer_variables[name]
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    before = [v.numpy().copy() for v in variables]
    scale = float(optimizer.dynamic_scale)
    gradients = [tf.fill(v.shape, np.inf) for v in variables]
    optimizer.apply_gradients(zip(gradients, variables))
    for old, variable in zip(before, variables):
        np.testing.assert_array_equal(old, variable.numpy())
    assert float(optimizer.dynamic_scale) == scale / 2


def test_bfloat16_training_lowers_the_loss(make_config, tmp_path, task):
    train_and_evaluate(make_config("precision=mixed_bfloat16", "train.steps=60", task=task))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    if has_own_step(task):  # its own values, finite at every log step
        assert all(np.isfinite(value) for record in records for value in record.values())
    else:
        assert records[-1]["loss"] < records[0]["loss"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["precision"] == "mixed_bfloat16"


def test_float16_on_a_cpu_compiles_without_the_fused_matmul_that_took_seconds(make_config):
    # Grappler's MatMul+BiasAdd fusion in float16 ran 1000x slower than the two ops on a Xeon
    # with AVX512_FP16 (5 s against 3 ms for one Dense of 1024 units): float16 runs go without
    # it; every other policy keeps it (it is a speed-up there).
    assert not tf.config.list_physical_devices("GPU")
    trainer_for(make_config, "mixed_float16", "regression")
    assert tf.config.optimizer.get_experimental_options().get("remapping") is False
    trainer_for(make_config, "mixed_bfloat16", "regression")
    assert tf.config.optimizer.get_experimental_options().get("remapping") is True
