"""The two-output sequence task: its data, named targets from an `.npz`, per-output losses and
metrics by value, and an export that serves both heads."""

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import save_npz
from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.tasks.sequence import SequenceConfig, SequenceTask

from ..loop.test_trainer import trainer_and_batches


def task(**config):
    return SequenceTask(SequenceConfig(**{"train_size": 64, "test_size": 16, **config}), 0)


def test_targets_are_the_value_after_the_window_and_whether_it_is_higher():
    arrays = task(window=5).arrays()
    assert arrays.x_train.shape == (64, 5, 1)
    assert arrays.y_train["next_value"].shape == (64, 1)
    # direction is 1 exactly when the next value is above the window's last one
    up = arrays.y_train["next_value"][:, 0] > arrays.x_train[:, -1, 0]
    np.testing.assert_array_equal(arrays.y_train["direction"], up.astype(np.int32))
    assert 0.2 < up.mean() < 0.8  # both classes occur


def test_named_targets_round_trip_through_an_npz(tmp_path):
    arrays = task(window=4).arrays()
    path = tmp_path / "mine.npz"
    flat = arrays._replace(x_train=arrays.x_train[..., 0], x_test=arrays.x_test[..., 0])
    save_npz(path, flat)  # windows of shape (n, window): a channel axis is added
    loaded = task(window=4).arrays(str(path))
    np.testing.assert_array_equal(loaded.x_train, arrays.x_train)
    for name in ("next_value", "direction"):
        np.testing.assert_array_equal(loaded.y_test[name], arrays.y_test[name])


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (lambda y: y["next_value"], "y_train holds one unnamed array; expected named targets"),
        (lambda y: {"next_value": y["next_value"]}, r"y_train holds \['next_value'\]"),
        (lambda y: {**y, "direction": y["direction"] + 2}, "direction must be 0 .* or 1"),
    ],
    ids=["unnamed", "one-missing", "bad-class"],
)
def test_wrong_targets_are_one_line_naming_them(tmp_path, targets, message):
    arrays = task().arrays()
    path = tmp_path / "bad.npz"
    save_npz(path, arrays._replace(y_train=targets(arrays.y_train), y_test=targets(arrays.y_test)))
    with pytest.raises(RunError, match=message) as error:
        task().arrays(str(path))
    assert "\n" not in str(error.value)


def test_objective_is_the_weighted_sum_of_the_heads_and_each_is_logged(make_config):
    cfg = make_config("task.direction_weight=0.25", task="sequence")
    trainer, _ = trainer_and_batches(cfg)
    arrays = trainer.task.arrays()
    x = arrays.x_test[:8]
    y = {name: value[:8] for name, value in arrays.y_test.items()}
    out = trainer.model(x)
    # by hand: Huber (threshold 1) of the next value, cross-entropy of the direction
    error = np.abs(out["next_value"].numpy()[:, 0] - y["next_value"][:, 0])
    huber = np.where(error <= 1, 0.5 * error**2, error - 0.5)
    logits = out["direction"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(8), y["direction"]]
    np.testing.assert_allclose(trainer.loss_fn(y, out), huber + 0.25 * cross_entropy, rtol=1e-5)
    assert list(trainer.eval_metrics) == [
        "loss",
        "direction_accuracy",
        "next_value_mae",
        "direction_loss",
        "next_value_loss",
    ]
    for metric in trainer.eval_metrics.values():
        metric.reset_state()
    trainer.eval_metrics["next_value_loss"].update_state(y, out)
    trainer.eval_metrics["next_value_mae"].update_state(y, out)
    assert float(trainer.eval_metrics["next_value_loss"].result()) == pytest.approx(huber.mean())
    assert float(trainer.eval_metrics["next_value_mae"].result()) == pytest.approx(error.mean())
    assert trainer.progress_fields == (
        "loss",
        "direction_accuracy",
        "eval_loss",
        "eval_direction_accuracy",
    )


def test_it_learns_both_heads_and_the_best_checkpoint_follows_one_head(make_config, tmp_path):
    cfg = make_config(
        "train.steps=300",
        "eval.every_steps=100",
        "checkpoint.best_metric=eval_direction_accuracy",
        "checkpoint.best_mode=max",
        "optimizer.learning_rate=0.01",
        task="sequence",
    )
    result = train_and_evaluate(cfg)
    assert result["eval_direction_accuracy"] > 0.7  # half is chance
    assert result["eval_next_value_mae"] < 0.5  # the signal's spread is about 0.7
    assert result["best_eval_direction_accuracy"] >= result["eval_direction_accuracy"]


def test_a_model_whose_outputs_do_not_match_the_losses_is_one_line(make_config):
    class Unnamed(SequenceTask):  # one loss for a model that returns named outputs
        def build_loss(self, reduction="sum_over_batch_size"):
            return super().build_loss(reduction)["next_value"]

        def build_metrics(self):
            return []

        def loss_weights(self):
            return {}

    from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
    from {{ cookiecutter.package_name }}.loop.trainer import Trainer

    cfg = make_config(task="sequence")
    broken = Unnamed(cfg.task, cfg.seed)
    with pytest.raises(RunError, match="returns named outputs .* but build_loss returns one"):
        Trainer(cfg, make_cluster(cfg.distribute), broken, broken.source(cfg.data))


def test_exported_model_serves_both_heads_by_name(make_config, tmp_path):
    from {{ cookiecutter.package_name }}.export import export

    cfg = make_config("train.steps=20", task="sequence")
    train_and_evaluate(cfg)
    path = export(cfg)
    served = tf.saved_model.load(f"{path}/saved_model")
    x = task(window=12).arrays().x_test[:4]
    out = served.signatures["serving_default"](inputs=tf.constant(x))
    assert sorted(out) == ["next_value", "up_probability"]
    assert out["next_value"].shape == (4,) and out["up_probability"].shape == (4,)
    assert np.all((out["up_probability"].numpy() >= 0) & (out["up_probability"].numpy() <= 1))
