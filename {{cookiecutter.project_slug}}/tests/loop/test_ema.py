"""A moving average of the weights: updated every step, evaluated and exported, checkpointed."""

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.evaluate import evaluate, restore_run
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate

from ..conftest import RTOL, noise_free
from .test_controller import weights_at
from .test_trainer import expected_held_out, snapshot, trainer_and_batches


def test_the_average_follows_the_recursion_of_the_weights_it_sees(make_config):
    cfg = make_config("optimizer.ema_decay=0.5", "optimizer.name=sgd", task="regression")
    trainer, batches = trainer_and_batches(cfg)
    seen = []
    for _ in range(3):
        trainer.train_steps(batches, tf.constant(1))
        seen.append(snapshot(trainer.variables))
    # Keras starts the average at the first step's weights, then a = 0.5 a + 0.5 w
    expected = seen[0]
    for weights in seen[1:]:
        expected = [0.5 * a + 0.5 * w for a, w in zip(expected, weights)]
    raw = snapshot(trainer.variables)
    with trainer.averaged_weights():
        for want, variable in zip(expected, trainer.variables):
            if variable.constraint is None:  # Keras averages before a constraint applies
                np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-7)
    for before, variable in zip(raw, trainer.variables):  # swapped back exactly
        np.testing.assert_array_equal(variable.numpy(), before)


@pytest.mark.parametrize(
    "devices",
    [(), ("distribute=mirrored", "distribute.cpu_devices=2"), ("precision=mixed_float16",)],
    ids=["one", "mirrored", "float16"],
)
def test_evaluation_and_evaluate_use_the_averaged_weights(make_config, devices):
    cfg = make_config("optimizer.ema_decay=0.9", *noise_free("regression"), *devices)
    result = train_and_evaluate(cfg)
    _, _, trainer, source, _ = restore_run(cfg)  # the averages are the model now
    arrays = source.arrays
    expected = expected_held_out(trainer, arrays.x_test, arrays.y_test)
    # batched in the loop, whole here: the same arithmetic in another order, so the tolerance
    # of the policy's compute dtype (oneDNN's float16 kernels round differently per CPU)
    rel = RTOL[cfg.precision.policy]
    assert result["eval_loss"] == pytest.approx(expected["eval_loss"], rel=rel)
    assert evaluate(cfg)["eval_loss"] == pytest.approx(expected["eval_loss"], rel=rel)
    averaged = snapshot(trainer.variables)
    trainer.use_averaged_weights()  # a second swap puts the raw weights back
    assert not np.array_equal(averaged[0], trainer.variables[0].numpy())


def test_the_checkpoint_holds_the_averages_and_resume_is_bitwise(make_config, tmp_path):
    ema = ("deterministic=true", "optimizer.ema_decay=0.99")
    plain, straight, resumed = tmp_path / "plain", tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(make_config("deterministic=true", "train.steps=20", run_dir=plain))
    train_and_evaluate(make_config(*ema, run_dir=straight))
    train_and_evaluate(make_config(*ema, "train.steps=20", run_dir=resumed))
    train_and_evaluate(make_config(*ema, run_dir=resumed))
    a, b = weights_at(straight, 40), weights_at(resumed, 40)
    assert len(a) > len(weights_at(plain, 20))  # one average per trainable variable
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
