"""The inner loop's custom features: gradient changes, two optimizers, extra logged values."""

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import arrays_for, train_dataset
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.trainer import Trainer


def trainer_and_batches(cfg):
    data = arrays_for(cfg)
    cluster = make_cluster(cfg.distribute)
    trainer = Trainer(cfg, cluster, data.x_train)
    dataset = train_dataset(data.x_train, data.y_train, cfg.train.batch_size, cfg.seed)
    return trainer, iter(cluster.strategy.experimental_distribute_dataset(dataset))


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def test_two_optimizers_move_body_and_head_at_their_own_rates(make_config):
    cfg = make_config(
        "optimizer.name=sgd", "optimizer.learning_rate=0.05", "optimizer.head_learning_rate=1e-12"
    )
    trainer, batches = trainer_and_batches(cfg)
    groups = trainer.model.variable_groups()
    body, head = snapshot(groups["body"]), snapshot(groups["head"])
    trainer.train_steps(batches, tf.constant(3))
    assert [name for name in trainer.group_names] == ["body", "head"]
    assert max(np.abs(a - v.numpy()).max() for a, v in zip(body, groups["body"])) > 1e-4
    assert max(np.abs(a - v.numpy()).max() for a, v in zip(head, groups["head"])) < 1e-9


def test_clip_norm_bounds_the_size_of_an_update(make_config):
    cfg = make_config(
        "optimizer.name=sgd", "optimizer.learning_rate=1.0", "train.clip_norm=0.001", "model.l1=0"
    )
    trainer, batches = trainer_and_batches(cfg)
    trainer.train_steps(batches, tf.constant(1))  # the first update also applies the constraint
    before = snapshot(trainer.variables)
    trainer.train_steps(batches, tf.constant(1))
    change = np.sqrt(sum(((a - v.numpy()) ** 2).sum() for a, v in zip(before, trainer.variables)))
    assert 0 < change <= 0.001 + 1e-6


def test_logs_hold_the_loss_the_custom_metric_and_the_extra_quantities(make_config):
    trainer, batches = trainer_and_batches(make_config())
    trainer.train_steps(batches, tf.constant(4))
    logs = trainer.collect_train_logs()
    assert {"loss", "mae", "grad_norm", "reconstruction_loss", "learning_rate"} <= set(logs)
    assert logs["grad_norm"] > 0 and logs["learning_rate"] == np.float32(0.002)
    assert trainer.collect_train_logs()["mae"] == 0.0  # reset after each collection


@pytest.mark.parametrize(
    "devices", [(), ("distribute=mirrored", "distribute.cpu_devices=2")], ids=["one", "mirrored"]
)
def test_evaluation_is_exact_whatever_the_batch_size_and_the_short_last_batch(make_config, devices):
    cfg = make_config("data.test_size=50", "model.noise_stddev=0", *devices)
    trainer, _ = trainer_and_batches(cfg)
    data = arrays_for(cfg)
    predictions = trainer.model(data.x_test, training=False).numpy()
    expected_mae = np.abs(predictions - data.y_test).mean()
    for batch_size in (7, 50, 512):  # 7: seven full batches and a short one of 1
        iterator, batches = trainer.held_out(data.x_test, data.y_test, batch_size)
        assert batches == -(-50 // batch_size)
        twice = [trainer.evaluate(iterator, batches) for _ in range(2)]
        assert twice[0]["eval_mae"] == pytest.approx(expected_mae, rel=1e-5), batch_size
        assert twice[0] == twice[1], batch_size  # the second pass starts where the first ended
