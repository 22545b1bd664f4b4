"""The inner loop: the reference step's arithmetic (on every task that uses it), and what every
task's step gets from the loop whatever it computes (its own step too): the update of one device
on two replicas, loss scaling under float16, evaluation exact for any batching."""

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.data import eval_dataset, map_arrays, num_rows, train_dataset
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.controller import training_batches
from {{ cookiecutter.package_name }}.loop.outputs import as_float32, task_metrics
from {{ cookiecutter.package_name }}.loop.trainer import Trainer
from {{ cookiecutter.package_name }}.tasks.base import Task, make_task

from ..conftest import noise_free, task_class_of


def trainer_cluster_and_source(cfg):
    task = make_task(cfg)
    source = task.source(cfg.data)
    cluster = make_cluster(cfg.distribute)
    return Trainer(cfg, cluster, task, source), cluster, source


def trainer_and_batches(cfg):
    """A trainer and the loop's own iterator over its (micro-)batches, from step 0."""
    trainer, cluster, source = trainer_cluster_and_source(cfg)
    return trainer, training_batches(cfg, cluster, source, 0)


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def needs_a_head(task):
    if task_class_of(task).variable_groups is Task.variable_groups:
        pytest.skip(f"task={task} names no head (optional: Task.variable_groups)")


def takes_the_reference_step(task):
    """The reference step's arithmetic is checked on the tasks that use it; a task's own step
    is checked by its own tests and by the loop's guarantees below."""
    if task_class_of(task).has_own_step():
        pytest.skip(f"task={task} writes its own train_step")


def test_two_optimizers_move_body_and_head_at_their_own_rates(make_config, task):
    needs_a_head(task)
    cfg = make_config(
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.05",
        "optimizer.head_learning_rate=1e-12",
        task=task,
    )
    trainer, batches = trainer_and_batches(cfg)
    groups = trainer.task.variable_groups(trainer.model)
    body, head = snapshot(groups["body"]), snapshot(groups["head"])
    trainer.train_steps(batches, tf.constant(3))
    assert list(trainer.optimizers) == ["body", "head"]
    assert max(np.abs(a - v.numpy()).max() for a, v in zip(body, groups["body"])) > 1e-4
    assert max(np.abs(a - v.numpy()).max() for a, v in zip(head, groups["head"])) < 1e-9


LEARNING_RATE = 0.1
ONE_SGD_STEP = ("optimizer.name=sgd", f"optimizer.learning_rate={LEARNING_RATE}")


def first_batch(cfg):
    data = make_task(cfg).arrays(cfg.data.path)
    return next(iter(train_dataset(data.x_train, data.y_train, cfg.train.batch_size, cfg.seed)))


def own_losses(model):
    return sum((tf.cast(x, tf.float32) for x in model.losses), tf.constant(0.0))


def expected_sgd_change(trainer, batch):
    """What one SGD step must subtract: lr x the gradient of the mean per-example loss over the
    whole batch plus the model's own losses, with the model in training mode, in float32; then
    a variable's constraint (the reconstruction head's non-negative kernel) applies."""
    inputs, targets = batch
    with tf.GradientTape() as tape:
        predictions = trainer.model(inputs, training=True)
        loss = tf.reduce_mean(trainer.loss_fn(targets, predictions)) + own_losses(trainer.model)
    changes = []
    for variable, gradient in zip(trainer.variables, tape.gradient(loss, trainer.variables)):
        old = variable.numpy()
        new = old - LEARNING_RATE * gradient.numpy()
        if variable.constraint is not None:
            new = variable.constraint(tf.constant(new)).numpy()
        changes.append(old - new)
    return changes


def sgd_change(cfg):
    """The trainer, the change the reference step must make (None for a task's own step), and
    the change one step of the loop made."""
    trainer, batches = trainer_and_batches(cfg)
    expected = None
    if not trainer.task.has_own_step():
        expected = expected_sgd_change(trainer, first_batch(cfg))
    before = snapshot(trainer.variables)
    trainer.train_steps(batches, tf.constant(1))
    return trainer, expected, [b - v.numpy() for b, v in zip(before, trainer.variables)]


def test_a_step_descends_the_mean_loss_plus_the_models_own_losses(make_config, task):
    takes_the_reference_step(task)
    # noise off: the eager reference and the compiled step see the same forward pass (each
    # shipped task's small settings give its model losses of its own: tests/tasks/)
    cfg = make_config(*ONE_SGD_STEP, *noise_free(task), task=task)
    trainer, expected, change = sgd_change(cfg)
    for want, got in zip(expected, change):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_two_replicas_take_the_step_of_one_device_on_the_global_batch(make_config, task):
    # Per-replica means (not over the global batch) double the gradient; the model's own losses
    # without scale_regularization_loss count twice.
    one = make_config(*ONE_SGD_STEP, *noise_free(task), task=task)
    two = make_config(
        *ONE_SGD_STEP,
        *noise_free(task),
        "distribute=mirrored",
        "distribute.cpu_devices=2",
        task=task,
    )
    _, _, change_one = sgd_change(one)
    _, _, change_two = sgd_change(two)
    for a, b in zip(change_one, change_two):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7)


def test_float16_scales_the_loss_so_small_gradients_survive(make_config, task):
    # Unscaled float16 gradients of this loss underflow or lose digits; scaled (from 32768) and
    # unscaled in float32 by each optimizer, the step matches float32's to float16 precision.
    # A task with a large loss may overflow at 32768: the optimizer skips that step and halves
    # its scale; the others' updates are undone and the first batch is taken again.
    _, _, change32 = sgd_change(make_config(*ONE_SGD_STEP, *noise_free(task), task=task))
    cfg = make_config(*ONE_SGD_STEP, *noise_free(task), "precision=mixed_float16", task=task)
    trainer, cluster, source = trainer_cluster_and_source(cfg)
    optimizers = list(trainer.optimizers.values())
    assert [float(o.dynamic_scale) for o in optimizers] == [32768.0] * len(optimizers)
    before = snapshot(trainer.variables)
    for _ in range(16):
        scales = [float(o.dynamic_scale) for o in optimizers]
        trainer.train_steps(training_batches(cfg, cluster, source, 0), tf.constant(1))
        halved = [float(o.dynamic_scale) for o in optimizers]
        if halved == scales:
            break
        assert halved == [s / 2 if h != s else s for h, s in zip(halved, scales)], halved
        for variable, value in zip(trainer.variables, before):  # undo the others' updates
            variable.assign(value)
    else:
        raise AssertionError(f"every scale down to {halved} overflowed")
    change16 = [b - v.numpy() for b, v in zip(before, trainer.variables)]
    total32 = np.sqrt(sum((c**2).sum() for c in change32))
    total16 = np.sqrt(sum((c**2).sum() for c in change16))
    assert total16 == pytest.approx(total32, rel=0.05)


def test_two_optimizers_at_one_rate_take_the_step_of_one(make_config, task):
    # Each optimizer must get the gradients of its own variables (its slice, in order).
    needs_a_head(task)
    changes = []
    for extra in ((), (f"optimizer.head_learning_rate={LEARNING_RATE}",)):
        cfg = make_config(*ONE_SGD_STEP, *noise_free(task), *extra, task=task)
        trainer, _, change = sgd_change(cfg)
        # keyed by the path below the model (a second model gets another name)
        changes.append({v.path.split("/", 1)[1]: c for v, c in zip(trainer.variables, change)})
    assert changes[0].keys() == changes[1].keys()
    for path, change in changes[0].items():
        np.testing.assert_allclose(changes[1][path], change, rtol=1e-5, atol=1e-8, err_msg=path)


def test_float16_clips_and_reports_the_unscaled_gradient_norm(make_config):
    # The loss is scaled by 32768 under float16: grad_norm and clipping must undo it.
    norms = {}
    for policy in ("float32", "mixed_float16"):
        cfg = make_config(*ONE_SGD_STEP, *noise_free("regression"), f"precision={policy}")
        trainer, batches = trainer_and_batches(cfg)
        trainer.train_steps(batches, tf.constant(1))
        norms[policy] = trainer.collect_train_logs()["grad_norm"]
    assert norms["mixed_float16"] == pytest.approx(norms["float32"], rel=0.05)


def test_the_step_runs_the_model_in_training_mode(make_config):
    trainer, batches = trainer_and_batches(make_config(task="regression"))
    trainer.train_steps(batches, tf.constant(2))
    # The regressor's tracker is updated only when called with training=True.
    assert trainer.collect_train_logs()["reconstruction_loss"] > 0


TWO_REPLICAS = ("distribute=mirrored", "distribute.cpu_devices=2")
REPLICAS = pytest.mark.parametrize("replicas", [(), TWO_REPLICAS], ids=["one_device", "two"])


def reference_step(trainer, batch):
    """The logged values one step must report, computed eagerly on the whole batch: the mean
    of each example's loss plus the model's own losses, each task metric of the predictions,
    and the norm of the unclipped gradient."""
    inputs, targets = batch
    with tf.GradientTape() as tape:
        predictions = trainer.model(inputs, training=True)
        loss = tf.reduce_mean(trainer.loss_fn(targets, predictions)) + own_losses(trainer.model)
    logs = {"loss": float(loss)}
    logs["grad_norm"] = float(tf.linalg.global_norm(tape.gradient(loss, trainer.variables)))
    for metric in task_metrics(trainer.task, trainer.loss_fn):
        metric.update_state(targets, predictions)
        logs[metric.name] = float(metric.result())
    return logs


@REPLICAS
def test_the_logged_loss_metrics_and_gradient_norm_are_the_global_batchs_under_clipping(
    make_config, task, replicas
):
    takes_the_reference_step(task)
    # The loss metric records each example's loss plus the model's own (unscaled: not the
    # replica's share, not the scaled regularization); the task metrics take (targets,
    # predictions) in that order; grad_norm is the norm before clipping, of the summed
    # gradient; and the clipped update is at most clip_norm, on one device as on two replicas.
    cfg = make_config(
        *ONE_SGD_STEP, *noise_free(task), "train.clip_norm=0.001", *replicas, task=task
    )
    trainer, batches = trainer_and_batches(cfg)
    expected = reference_step(trainer, first_batch(cfg))
    before = snapshot(trainer.variables)
    trainer.train_steps(batches, tf.constant(1))
    logs = trainer.collect_train_logs()
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert expected["grad_norm"] > 0.01  # far above clip_norm: clipping is at work
    moved = [b - v.numpy() for b, v in zip(before, trainer.variables) if v.constraint is None]
    # within float32's reading of a 1e-4 step off weights near 1 (unclipped: ten times more)
    assert np.sqrt(sum((m**2).sum() for m in moved)) <= LEARNING_RATE * 0.001 * 1.01


@REPLICAS
def test_float16_takes_the_step_of_float32_on_one_device_and_on_two_replicas(make_config, replicas):
    # The loss scale applies to the global-batch loss: scaling a replica's local mean instead
    # doubles the update on 2 replicas. Measured on the one layer no constraint clips.
    changes = {}
    for policy in ("float32", "mixed_float16"):
        cfg = make_config(
            *ONE_SGD_STEP, *noise_free("regression"), f"precision={policy}", *replicas
        )
        trainer, _, change = sgd_change(cfg)
        output = [c for v, c in zip(trainer.variables, change) if "output" in v.path]
        changes[policy] = np.sqrt(sum((c**2).sum() for c in output))
    assert changes["float32"] > 0
    # float16 rounds each of the step's many operations to 2**-11: 5% holds, a doubling fails.
    assert changes["mixed_float16"] == pytest.approx(changes["float32"], rel=0.05)


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


def test_a_chunk_that_reads_the_logs_gives_a_separate_reads_values_and_starts_them_over(
    make_config,
):
    """At a log step the loop's call also reads the training metrics (one compiled call instead
    of two); the values are those a separate read gives after the same steps, and the metrics
    start over after them."""
    cfg = make_config(task="regression")
    folded, folded_batches = trainer_and_batches(cfg)
    separate, separate_batches = trainer_and_batches(cfg)
    folded.train_steps(folded_batches, tf.constant(3))
    folded.train_steps(folded_batches, tf.constant(2), read_logs=True)
    separate.train_steps(separate_batches, tf.constant(3))
    separate.train_steps(separate_batches, tf.constant(2))
    first, expected_first = folded.collect_train_logs(), separate.collect_train_logs()
    folded.train_steps(folded_batches, tf.constant(2), read_logs=True)
    separate.train_steps(separate_batches, tf.constant(2))
    second, expected_second = folded.collect_train_logs(), separate.collect_train_logs()
    assert folded._read_train_metrics.experimental_get_tracing_count() == 0  # never called
    for logs, expected in ((first, expected_first), (second, expected_second)):
        assert logs.keys() == expected.keys()
        np.testing.assert_allclose(list(logs.values()), list(expected.values()), rtol=1e-6)
    assert first["loss"] != second["loss"]  # each covers its own steps
    folded.train_steps(folded_batches, tf.constant(1))  # read nothing: a call of its own reads
    assert folded.collect_train_logs()["grad_norm"] > 0
    assert folded._read_train_metrics.experimental_get_tracing_count() == 1


def expected_held_out(trainer, x, y):
    """The held-out loss and metrics computed on the whole split at once, outside the loop."""
    predictions = as_float32(trainer.model(x, training=False))
    values = {"eval_loss": float(np.mean(trainer.loss_fn(y, predictions)))}
    for metric in task_metrics(trainer.task, trainer.loss_fn):
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
    cfg = make_config(*noise_free(task), *devices, task=task)
    trainer, _ = trainer_and_batches(cfg)
    data = trainer.task.arrays(cfg.data.path)
    assert num_rows(data.x_test) >= 50, "the small settings keep 50 held-out examples"
    x, y = (map_arrays(lambda a: a[:50], nest) for nest in (data.x_test, data.y_test))
    passes = {}
    for batch_size in (7, 50, 512):
        iterator, batches = trainer.held_out(eval_dataset(x, y, batch_size))
        assert batches == -(-50 // batch_size)
        passes[batch_size] = [trainer.evaluate(iterator, batches) for _ in range(2)]
        # the second pass starts where the first ended
        assert passes[batch_size][0] == passes[batch_size][1], batch_size
    assert passes[7][0] and set(passes[7][0]) == set(trainer.eval_names)
    for batch_size in (50, 512):  # the same values whatever the batching
        assert passes[batch_size][0] == pytest.approx(passes[7][0], rel=1e-5), batch_size
    if not task_class_of(task).has_own_step():  # the reference step's values, computed whole
        assert passes[50][0] == pytest.approx(expected_held_out(trainer, x, y), rel=1e-5)


def weights_after(cfg, steps):
    trainer, batches = trainer_and_batches(cfg)
    trainer.train_steps(batches, tf.constant(steps))
    return {v.path.split("/", 1)[1]: v.numpy() for v in trainer.variables}


@pytest.mark.parametrize(
    "extra",
    [(), ("distribute=mirrored", "distribute.cpu_devices=2"), ("precision=mixed_float16",)],
    ids=["one", "mirrored", "float16"],
)
def test_four_accumulated_micro_batches_make_the_update_of_one_batch(make_config, extra):
    # SGD, noise off: the same examples, the same mean gradient, the same weights
    common = (*ONE_SGD_STEP, *noise_free("regression"), "task.l1=0.001", *extra)
    whole = weights_after(make_config(*common), 3)
    accumulated = weights_after(make_config(*common, "train.accumulate_steps=4"), 3)
    # float16 rounds each micro-batch's gradients differently from the whole batch's
    rtol, atol = (2e-2, 2e-5) if extra == ("precision=mixed_float16",) else (1e-5, 1e-6)
    for path, value in whole.items():
        np.testing.assert_allclose(accumulated[path], value, rtol=rtol, atol=atol, err_msg=path)
    moved = weights_after(make_config(*common, "train.accumulate_steps=4"), 0)
    assert any(not np.array_equal(moved[p], accumulated[p]) for p in moved)  # it did train


def test_a_batch_that_does_not_split_into_micro_batches_is_refused(make_config):
    from {{ cookiecutter.package_name }}.config import ConfigError

    with pytest.raises(ConfigError, match="accumulate_steps=3: must divide train.batch_size=32"):
        make_config("train.accumulate_steps=3")
