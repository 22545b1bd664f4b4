"""Thread pools picked by the model: one intra-op thread for a small step, every core for a
large one, a set value always, and nothing changed where TensorFlow already runs."""

import json

import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.step import StepContext
from {{ cookiecutter.package_name }}.loop.threads import (
    SMALL_STEP_FLOPS,
    choose_intra_op,
    configure_threads,
    step_flops_estimate,
)
from {{ cookiecutter.package_name }}.loop.trainer import Trainer
from {{ cookiecutter.package_name }}.tasks.base import make_task

from ..conftest import python_output


def test_a_small_step_gets_one_thread_a_large_or_unknown_one_every_core_a_set_value_wins():
    assert choose_intra_op(0, SMALL_STEP_FLOPS * 0.99) == 1
    assert choose_intra_op(0, SMALL_STEP_FLOPS) == 0  # 0: TensorFlow's default, every core
    assert choose_intra_op(0, None) == 0  # a model that could not be sized
    assert choose_intra_op(3, 10.0) == 3 and choose_intra_op(2, 1e12) == 2


def estimate(cfg, batch):
    task = make_task(cfg)
    return step_flops_estimate(task, task.source(cfg.data), batch)


def counted_step_flops(cfg) -> float:
    """FLOPs of one reference training step of `cfg` on one device, as TensorFlow's profiler
    counts them in the traced step (forward and backward passes, the update)."""
    task = make_task(cfg)
    source = task.source(cfg.data)
    trainer = Trainer(cfg, make_cluster(cfg.distribute), task, source)
    context = StepContext(trainer, trainer.task_train_metrics, None)
    batch = next(iter(source.train_batches(tf.distribute.get_strategy(), 32, 0, 0)))
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), batch)
    step = tf.function(lambda batch: task.train_step(batch, context))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = step.get_concrete_function(spec).graph
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def test_the_estimate_is_three_forward_passes_of_the_batch_and_near_the_counted_step():
    cfg = load_config(
        ["run_dir=unused", "task=regression", "task.hidden_units=64", "train.batch_size=32"]
    )
    # The profiler's count of the traced training step (forward and backward passes): three
    # forward passes within 10% (the first layer's input gradient is not computed).
    counted = counted_step_flops(cfg)
    at_32, at_64 = estimate(cfg, 32), estimate(cfg, 64)
    assert 0.9 * counted <= at_32 <= 1.1 * counted
    # Per example, not per data set (the weights' own penalty does not grow with the batch).
    assert 1.95 * at_32 <= at_64 <= 2 * at_32


def test_a_model_that_cannot_be_built_in_a_graph_leaves_the_choice_to_tensorflow():
    class EagerOnly:
        def build_model(self):
            raise RuntimeError("this model builds eagerly only")

    class Source:
        example_inputs = tf.zeros((4, 3)).numpy()

    assert step_flops_estimate(EagerOnly(), Source(), 4) is None


def test_where_tensorflow_already_runs_the_pools_are_left_as_they_are(make_config):
    float(tf.constant(1.0) + 1.0)  # the runtime has started (the session set one thread)
    cfg = make_config("threads.intra_op=2", "threads.inter_op=2")
    task = make_task(cfg)
    assert configure_threads(cfg, task, task.source(cfg.data)) is None
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 0


CHOOSE = """
import json, keras, tensorflow as tf
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.loop.threads import configure_threads
from {{ cookiecutter.package_name }}.tasks.base import make_task

def choose(*overrides):
    cfg = load_config(["run_dir=unused", "task=regression", *overrides])
    task = make_task(cfg)
    return task, configure_threads(cfg, task, task.source(cfg.data))

out = {}
out["wide"] = choose("task.hidden_units=1024", "train.batch_size=256")[1]
out["set"] = choose("threads.intra_op=3", "threads.inter_op=2")[1]
task, out["default"] = choose()  # each call found the runtime not started: it can set pools
out["pools"] = [
    tf.config.threading.get_intra_op_parallelism_threads(),
    tf.config.threading.get_inter_op_parallelism_threads(),
]
model = task.build_model()
model(task.arrays().x_train[:2])
after_probe = [v.path for v in model.weights]
keras.backend.clear_session()
model = task.build_model()
model(task.arrays().x_train[:2])
out["names_kept"] = after_probe == [v.path for v in model.weights]
print(json.dumps(out))
"""


def test_in_a_new_process_the_regression_gets_one_thread_and_the_wide_preset_every_core():
    task = make_task(load_config(["run_dir=unused", "task=regression"]))
    task.build_model()(task.arrays().x_train[:2])  # here first: a model that cannot be built
    out = json.loads(python_output(CHOOSE).splitlines()[-1])
    assert out["wide"]["intra_op"] == 0 and out["wide"]["step_flops"] > SMALL_STEP_FLOPS
    assert out["set"] == {"intra_op": 3, "inter_op": 2, "step_flops": None}  # not probed
    assert out["default"]["intra_op"] == 1 and out["default"]["step_flops"] < SMALL_STEP_FLOPS
    assert out["pools"] == [1, 0]  # the last call's choice is what TensorFlow runs with
    # The probe's layers do not shift the real model's automatic names (dense -> dense_1).
    assert out["names_kept"]


STARTS_WHILE_SIZED = """
import json, keras, numpy, tensorflow as tf
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.loop.threads import configure_threads

class Task:
    def build_models(self):
        tf.config.list_logical_devices("GPU")  # starts TensorFlow's runtime, as Keras' GRU does
        return {"model": keras.Sequential([keras.layers.Dense(2)])}

class Source:
    example_inputs = numpy.zeros((4, 3), "float32")

cfg = load_config(["run_dir=unused", "threads.inter_op=1"])
chosen = configure_threads(cfg, Task(), Source())
print(json.dumps([chosen, tf.config.threading.get_inter_op_parallelism_threads()]))
"""


def test_a_model_that_starts_tensorflow_while_sized_leaves_the_pools_and_runs_on():
    chosen, inter_op = json.loads(python_output(STARTS_WHILE_SIZED).splitlines()[-1])
    assert chosen is None and inter_op == 0  # not set, and no error


def test_threads_are_checked_like_every_other_key():
    with pytest.raises(Exception, match=r"threads.intra_op=-1: must be zero or more"):
        load_config(["threads.intra_op=-1"])
