"""The inner loop's custom features: gradient changes, two optimizers, extra logged values, and
evaluation that is exact for every task."""

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import train_dataset
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.trainer import Trainer
from {{ cookiecutter.package_name }}.tasks.base import make_task


def trainer_and_batches(cfg):
    task = make_task(cfg)
    data = task.arrays(cfg.data.path)
    cluster = make_cluster(cfg.distribute)
    trainer = Trainer(cfg, cluster, task, data.x_train)
    dataset = train_dataset(data.x_train, data.y_train, cfg.train.batch_size, cfg.seed)
    return trainer, iter(cluster.strategy.experimental_distribute_dataset(dataset))


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def test_two_optimizers_move_body_and_head_at_their_own_rates(make_config, task):
    cfg = make_config(
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.05",
        "optimizer.head_learning_rate=1e-12",
        task=task,
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
        "optimizer.name=sgd", "optimizer.learning_rate=1.0", "train.clip_norm=0.001", "task.l1=0"
    )
    trainer, batches = trainer_and_batches(cfg)
    trainer.train_steps(batches, tf.constant(1))  # the first update also applies the constraint
    before = snapshot(trainer.variables)
    trainer.train_steps(batches, tf.constant(1))
    change = np.sqrt(sum(((a - v.numpy()) ** 2).sum() for a, v in zip(before, trainer.variables)))
    assert 0 < change <= 0.001 + 1e-6


def test_logs_hold_the_loss_the_custom_metric_and_the_extra_quantities(make_config):
    trainer, batches = trainer_and_batches(make_config(task="regression"))
    trainer.train_steps(batches, tf.constant(4))
    logs = trainer.collect_train_logs()
    assert {"loss", "mae", "grad_norm", "reconstruction_loss", "learning_rate"} <= set(logs)
    assert logs["grad_norm"] > 0 and logs["learning_rate"] == np.float32(0.002)
    assert trainer.collect_train_logs()["mae"] == 0.0  # reset after each collection
    assert trainer.progress_fields == ("loss", "mae", "eval_loss", "eval_mae")


def expected_held_out(task, model, x, y):
    """The held-out loss and metrics computed on the whole split at once, outside the loop."""
    predictions = tf.cast(model(x, training=False), tf.float32)
    values = {"eval_loss": float(np.mean(task.build_loss(reduction=None)(y, predictions)))}
    for metric in task.build_metrics():
        metric.update_state(y, predictions)
        values[f"eval_{metric.name}"] = float(metric.result())
    return values


@pytest.mark.parametrize(
    "devices", [(), ("distribute=mirrored", "distribute.cpu_devices=2")], ids=["one", "mirrored"]
)
def test_evaluation_is_exact_whatever_the_batch_size_and_the_short_last_batch(
    make_config, task, devices
):
    # 50 examples in batches of 7: seven full batches and a short one of 1, which leaves the
    # second of 2 replicas an EMPTY batch (a Conv2D under oneDNN fails on one).
    cfg = make_config("task.test_size=50", "task.noise_stddev=0", *devices, task=task)
    trainer, _ = trainer_and_batches(cfg)
    data = trainer.task.arrays(cfg.data.path)
    expected = expected_held_out(trainer.task, trainer.model, data.x_test, data.y_test)
    for batch_size in (7, 50, 512):
        iterator, batches = trainer.held_out(data.x_test, data.y_test, batch_size)
        assert batches == -(-50 // batch_size)
        twice = [trainer.evaluate(iterator, batches) for _ in range(2)]
        assert twice[0] == pytest.approx(expected, rel=1e-5), batch_size
        assert twice[0] == twice[1], batch_size  # the second pass starts where the first ended
