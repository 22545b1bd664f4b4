"""The GAN task: its quality metric, its two models and optimizers, and what it serves."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from {{ cookiecutter.package_name }}.components.metrics import ModeCoverage
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics

RING = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]


def coverage(kind, points, of_targets=False, batches=1):
    metric = ModeCoverage(RING, 0.1, kind, of_targets=of_targets)
    for chunk in np.array_split(np.asarray(points, np.float32), batches):
        if of_targets:
            metric.update_state(chunk, np.zeros_like(chunk))
        else:
            metric.update_state(np.zeros_like(chunk), chunk)
    return float(metric.result())


def test_a_collapsed_generator_covers_one_mode_and_a_spread_one_every_mode():
    collapsed = [[1.0, 0.05]] * 40
    spread = [RING[i % 4] for i in range(40)]
    assert coverage("modes", collapsed) == 1.0 and coverage("high_quality", collapsed) == 1.0
    assert coverage("modes", spread) == 4.0
    # 3 standard deviations (0.3) is the line: 0.29 away counts, 0.31 away does not
    assert coverage("high_quality", [[1.29, 0.0], [1.31, 0.0]]) == 0.5


def test_a_mode_needs_a_quarter_of_its_fair_share_and_points_off_every_mode_count_against():
    # 40 points, fair share 10 per mode: 2 points on the last mode (below 2.5) do not cover it
    points = [RING[0]] * 19 + [RING[1]] * 19 + [RING[2]] * 2
    assert coverage("modes", points) == 2.0
    # half the points far from every mode: high quality 0.5, and modes judged on all 40
    far = [[5.0, 5.0]] * 20 + [RING[i % 4] for i in range(20)]
    assert coverage("high_quality", far) == 0.5 and coverage("modes", far) == 4.0


def test_coverage_is_the_same_over_batches_and_reads_targets_when_asked():
    rng = np.random.default_rng(0)
    points = np.asarray(RING)[rng.integers(0, 4, 101)] + 0.1 * rng.standard_normal((101, 2))
    for kind in ("modes", "high_quality"):
        assert coverage(kind, points, batches=7) == coverage(kind, points)
        assert coverage(kind, points, of_targets=True) == coverage(kind, points)


def gan(make_config, *overrides, steps=40):
    return make_config(f"train.steps={steps}", *overrides, task="gan")


def test_each_optimizer_takes_its_own_settings_by_name_and_logs_its_norm(make_config):
    cfg = gan(
        make_config,
        "optimizer.learning_rate=0.002",
        "task.optimizers.discriminator.learning_rate=0.004",
    )
    result = train_and_evaluate(cfg)
    assert result["discriminator_learning_rate"] == pytest.approx(0.004)
    assert result["generator_learning_rate"] == pytest.approx(0.002)  # optimizer.* for the rest
    record = read_metrics(cfg.run_dir)[-1]
    assert record["discriminator_grad_norm"] > 0 and record["generator_grad_norm"] > 0
    assert "grad_norm" not in record  # one norm per optimizer, none made up for "all"
    checkpoint = f"{cfg.run_dir}/checkpoints/ckpt-40"
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(
        tf.train.load_checkpoint(checkpoint).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    )
    named = {child.local_name for child in graph.nodes[0].children}
    assert {"model_generator", "model_discriminator", "step"} <= named
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    for key in ("optimizer_generator", "optimizer_discriminator"):  # each with its own slots
        assert sum(name.startswith(f"{key}/_variables/") for name in names) >= 12, key


def test_a_setting_for_an_optimizer_the_task_does_not_have_is_one_line(make_config):
    from {{ cookiecutter.package_name }}.config import OptimizerSettings

    cfg = gan(make_config)
    cfg.task.optimizers["critic"] = OptimizerSettings(learning_rate=0.1)  # a task's own config
    with pytest.raises(RunError, match="task.optimizers.critic: task=gan has no optimizer critic"):
        train_and_evaluate(cfg)


def test_training_draws_samples_and_export_serves_the_generator(make_config, tmp_path):
    cfg = gan(make_config, "eval.every_steps=20")
    train_and_evaluate(cfg)
    assert (tmp_path / "run" / "samples.png").stat().st_size > 1000
    images = tf.io.gfile.glob(f"{cfg.run_dir}/tensorboard/figures/events.out.tfevents.*")
    assert images
    exported = export(cfg)
    served = tf.saved_model.load(os.path.join(exported, "saved_model"))
    latents = tf.random.stateless_normal((5, 8), seed=(1, 2))
    samples = served.signatures["serving_default"](inputs=latents)["samples"]
    assert samples.shape == (5, 2) and np.isfinite(samples.numpy()).all()


@pytest.mark.slow
def test_training_puts_most_samples_on_the_modes_of_the_ring(tmp_path):
    cfg = load_config([f"run_dir={tmp_path / 'run'}", "experiment=gan_ring", "train.steps=1500"])
    result = train_and_evaluate(cfg)
    # the data's own figures, the baseline; an untrained generator puts almost nothing there
    assert result["eval_real_high_quality"] > 0.95 and result["eval_real_modes"] == 8
    assert result["eval_high_quality"] > 0.3 and result["eval_modes"] >= 6, result
