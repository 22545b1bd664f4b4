"""Distillation from a frozen teacher (`task=distillation`): a small student learns from the
teacher's soft outputs and from the labels.

The teacher is a fixed network the task builds from its seed: not trainable, in no optimizer
(it is in the checkpoint all the same, as every model of `build_models` is). The data is made
in code: inputs `x ~ N(0, I)`, labelled with the teacher's class, a share `label_noise` of the
labels replaced by random ones, so the teacher's soft outputs hold what the labels lost.

The loss of an example (Hinton et al. 2015, keras-io's knowledge_distillation):
`(1 - alpha) * cross_entropy(label, student) + alpha * T^2 * KL(teacher_T || student_T)`, the
`_T` outputs softened by the temperature `T`. Held out: `eval_accuracy` against the labels,
`eval_agreement` (the student's class is the teacher's), `eval_teacher_accuracy` (the
teacher's against the labels: the best the student can do). Export serves the student.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import fraction, positive
from ..data import Arrays
from .base import Task, TaskConfig


@dataclass
class DistillationConfig(TaskConfig):
    train_size: int = positive(8192)
    test_size: int = positive(2048)
    input_dim: int = positive(16)
    num_classes: int = positive(8)
    teacher_units: int = positive(256)
    student_units: int = positive(64)
    label_noise: float = fraction(0.3)
    temperature: float = positive(2.0)
    alpha: float = fraction(0.9)  # the teacher's share of the loss


class DistillationTask(Task, name="distillation"):
    """A student MLP learns a fixed teacher MLP's classes from its soft outputs and labels."""

    config_class = DistillationConfig
    identity_keys = ("input_dim", "num_classes", "teacher_units", "student_units")
    small_overrides = ("task.train_size=512", "task.test_size=128", "task.teacher_units=32")

    def teacher_weights(self) -> list[np.ndarray]:
        """The teacher's kernels and biases, drawn from the seed (apart from the data's draws)."""
        c = self.config
        rng = np.random.default_rng([self.seed, 1])
        w1 = rng.normal(0, 1 / np.sqrt(c.input_dim), (c.input_dim, c.teacher_units))
        w2 = rng.normal(0, 4 / np.sqrt(c.teacher_units), (c.teacher_units, c.num_classes))
        biases = [rng.normal(0, 0.5, c.teacher_units), np.zeros(c.num_classes)]
        return [a.astype(np.float32) for a in (w1, biases[0], w2, biases[1])]

    def make_arrays(self) -> Arrays:
        c = self.config
        rng = np.random.default_rng(self.seed)
        w1, b1, w2, b2 = self.teacher_weights()

        def draw(size):
            x = rng.standard_normal((size, c.input_dim)).astype(np.float32)
            labels = np.argmax(np.tanh(x @ w1 + b1) @ w2 + b2, axis=1)
            noisy = rng.random(size) < c.label_noise
            labels[noisy] = rng.integers(0, c.num_classes, noisy.sum())
            return x, labels.astype(np.int32)

        return Arrays(*draw(c.train_size), *draw(c.test_size))

    # -- two models, one optimizer ------------------------------------------------------------
    def build_models(self) -> dict:
        import keras

        c = self.config

        def mlp(units, name):
            return keras.Sequential(
                [
                    keras.Input((c.input_dim,)),
                    keras.layers.Dense(units, activation="tanh"),
                    keras.layers.Dense(c.num_classes, dtype="float32"),  # logits in float32
                ],
                name=name,
            )

        teacher = mlp(c.teacher_units, "teacher")
        teacher.set_weights(self.teacher_weights())
        teacher.trainable = False  # frozen: no gradient, no optimizer
        return {"student": mlp(c.student_units, "student"), "teacher": teacher}

    def optimizer_variables(self, models: dict) -> dict[str, list]:
        return {"student": models["student"].trainable_variables}

    def build_metrics(self) -> list:
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # -- the step -----------------------------------------------------------------------------
    def distillation_loss(self, labels, logits, teacher_logits):
        """The loss of each example (float32): hard labels and the teacher's softened outputs."""
        import tensorflow as tf

        c = self.config
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        soft_teacher = tf.nn.softmax(teacher_logits / c.temperature)
        kl = tf.reduce_sum(
            soft_teacher
            * (
                tf.nn.log_softmax(teacher_logits / c.temperature)
                - tf.nn.log_softmax(logits / c.temperature)
            ),
            axis=-1,
        )
        return (1 - c.alpha) * hard + c.alpha * c.temperature**2 * kl

    def train_step(self, batch, loop) -> dict:
        import tensorflow as tf

        x, labels = batch
        student, teacher = loop.models["student"], loop.models["teacher"]
        teacher_logits = teacher(x, training=False)  # outside the tape: nothing to learn there
        with tf.GradientTape() as tape:
            logits = student(x, training=True)
            per_example = self.distillation_loss(labels, logits, teacher_logits)
            loss = loop.compute_average_loss(per_example)  # the mean over the GLOBAL batch
        loop.apply_gradients(tape, loss, "student")
        for metric in loop.metrics:
            metric.update_state(labels, logits)
        return {"loss": per_example}

    def eval_step(self, batch, loop) -> dict:
        import tensorflow as tf

        x, labels = batch
        logits = loop.models["student"](x, training=False)
        teacher_logits = loop.models["teacher"](x, training=False)
        for metric in loop.metrics:
            metric.update_state(labels, logits)
        student_class, teacher_class = tf.argmax(logits, -1), tf.argmax(teacher_logits, -1)
        return {
            "loss": self.distillation_loss(labels, logits, teacher_logits),
            "agreement": tf.cast(student_class == teacher_class, tf.float32),
            "teacher_accuracy": tf.cast(teacher_class == tf.cast(labels, tf.int64), tf.float32),
        }

    # -- what is served -----------------------------------------------------------------------
    def serving_model(self, models: dict):
        return models["student"]

    def serve(self, model, inputs) -> dict:
        import keras

        logits = model(inputs, training=False)
        return {
            "probabilities": keras.ops.softmax(logits),
            "class_ids": keras.ops.argmax(logits, -1),
        }
