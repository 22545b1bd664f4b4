"""Gradient accumulation: k micro-batches, one update (`train.accumulate_steps=k`).

`GradientAccumulator` stands in for an optimizer in `Trainer.groups`. The train step calls its
`apply_gradients` on every micro-batch as it would an optimizer's: on the first k - 1 it adds
the gradients to per-replica sums; on the k-th it hands the optimizer their mean, which the
optimizer then sums over replicas like any step's gradients, and resets the sums. Which call is
the k-th is decided when the loop is traced (`apply_now`, set by the loop, unrolled k times),
not by a `tf.cond`: an update inside a conditional is a synchronization point that
`tf.distribute` does not allow (Keras' own `gradient_accumulation_steps` fails that way under
MirroredStrategy, and it also applies weight constraints after every micro-batch).

With the per-example losses averaged over each micro-batch's global size, the mean of the k
gradients is the gradient of the whole batch: the update is that of one batch of
`train.batch_size`, in a k-th of the activation memory.
"""

from __future__ import annotations

import tensorflow as tf


class GradientAccumulator:
    """Sums gradients over micro-batches; applies their mean with `optimizer` on the last."""

    def __init__(self, optimizer, variables, steps: int):
        self.optimizer = optimizer
        self.steps = steps
        self.apply_now = False
        # Each replica sums its own gradients (ON_READ: a local copy per replica).
        self.sums = [
            tf.Variable(
                tf.zeros(variable.shape, tf.float32),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )
            for variable in variables
        ]

    def apply_gradients(self, grads_and_vars) -> None:
        gradients, variables = zip(*grads_and_vars)
        if not self.apply_now:
            for total, gradient in zip(self.sums, gradients):
                total.assign_add(tf.cast(gradient, tf.float32))
            return
        means = [(total + gradient) / self.steps for total, gradient in zip(self.sums, gradients)]
        self.optimizer.apply_gradients(zip(means, variables))
        for total in self.sums:
            total.assign(tf.zeros_like(total))
