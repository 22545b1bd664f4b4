"""TensorFlow's thread pools for a training process, chosen by the model before TensorFlow runs.

TensorFlow splits each op over `intra_op` threads and runs `inter_op` ops side by side; both
are fixed once its runtime starts (the first op, device or variable), so they are set at the
start of a run or not at all. Small ops gain nothing from being split and pay for the handoff:
one intra-op thread runs the shipped tasks' steps faster than every core, and a step of several
GFLOP slower (docs/performance.md has the figures and the command that measures them).
`threads.intra_op=0` therefore picks one thread for a step under `SMALL_STEP_FLOPS` and
TensorFlow's default (every core) above.

The step's size comes from the model itself: built in a graph of its own (TensorFlow's runtime
does not start for it), called on a real batch, its forward pass counted by TensorFlow's
profiler (a fraction of a second for the shipped tasks).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# A training step (forward and backward passes, about 3x the forward pass) below this many
# FLOPs runs each op on one thread.
SMALL_STEP_FLOPS = 1e9


def step_flops_estimate(task, source, batch_size: int) -> float | None:
    """FLOPs of one training step over `batch_size` examples of `source`: three times the
    forward pass of the task's models, counted in a graph of its own (each of several models on
    its declared inputs). None if the models cannot be built that way."""
    import keras
    import tensorflow as tf

    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the profiler's notes about its TF1-era internals
    try:
        graph = tf.Graph()
        with graph.as_default():
            models = task.build_models()
            for model in models.values():
                if len(models) == 1:  # the task's model, on a batch of its inputs
                    inputs = tf.nest.map_structure(
                        lambda array: tf.constant(array[:batch_size]), source.example_inputs
                    )
                else:  # each of several models on zeros of its declared input shapes
                    inputs = [tf.zeros((batch_size, *x.shape[1:]), x.dtype) for x in model.inputs]
                    inputs = inputs[0] if len(inputs) == 1 else inputs
                model(inputs, training=False)
            options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
            options["output"] = "none"
            flops = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    except Exception as error:  # a model that only builds eagerly: TensorFlow's defaults
        log.info("thread choice: the model's size is unknown (%s)", error)
        return None
    finally:
        logger.setLevel(level)
        # The layers' automatic names (dense, dense_1...) start again for the real model.
        keras.backend.clear_session(free_memory=False)
    return 3.0 * flops


def choose_intra_op(setting: int, flops: float | None) -> int:
    """`threads.intra_op` resolved: itself when set, else 1 for a small step and 0
    (TensorFlow's default, every core) for a large or unknown one."""
    if setting:
        return setting
    return 1 if flops is not None and flops < SMALL_STEP_FLOPS else 0


def configure_threads(cfg, task, source) -> dict | None:
    """Sets TensorFlow's thread pools for this process from `cfg.threads` and the model's size
    (on a batch of `source`; None: the size is unknown, TensorFlow's default unless set);
    returns what was set, or None when TensorFlow already runs in this process (its pools stay
    as they are: a test session, a notebook, the second job of a sweep)."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    if context.context()._context_handle is not None:  # the runtime has started
        return None
    settings = cfg.threads
    flops = None
    if not settings.intra_op and source is not None:
        batch = max(1, cfg.train.batch_size // cfg.train.accumulate_steps)
        flops = step_flops_estimate(task, source, batch)
    chosen = {"intra_op": choose_intra_op(settings.intra_op, flops), "inter_op": settings.inter_op}
    try:  # a model may start the runtime while it is built (Keras' GRU asks for GPUs)
        tf.config.threading.set_intra_op_parallelism_threads(chosen["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(chosen["inter_op"])
    except RuntimeError:
        log.info("thread choice: TensorFlow started while the model was sized; pools unchanged")
        return None
    return {**chosen, "step_flops": flops}
