"""Custom learning-rate schedule: linear warmup, then cosine decay.

For `step < warmup_steps`: ``peak * (step + 1) / warmup_steps``; after it, with
``p = (step - warmup_steps) / (decay_steps - warmup_steps)`` clipped to [0, 1]:
``final + (peak - final) * (1 + cos(pi * p)) / 2``. A Keras optimizer calls it with its
`iterations`, which a checkpoint holds, so a resumed run continues the schedule exactly.

>>> schedule = WarmupCosine(peak=1.0, decay_steps=10, warmup_steps=2)
>>> [round(float(schedule(step)), 3) for step in (0, 1, 2, 6, 10, 20)]
[0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
"""

import math

import keras
from keras import ops

from ._registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then a cosine decay to `final` at `decay_steps`.

    Args:
        peak: Positive float, the rate at the end of the warmup.
        decay_steps: Positive integer, the step at which the rate reaches `final` (the run's
            total steps, usually); it stays there afterwards.
        warmup_steps: Non-negative integer below `decay_steps`; 0 starts at `peak`.
        final: Non-negative float, the last rate.

    Call arguments:
        step: The optimizer's iteration count (0 for the first update).

    Returns:
        The learning rate for that step, a float32 scalar.

    Example:

    >>> optimizer = keras.optimizers.SGD(learning_rate=WarmupCosine(0.1, decay_steps=100))
    >>> round(float(optimizer.learning_rate), 4)
    0.1
    """

    def __init__(self, peak, decay_steps, warmup_steps=0, final=0.0):
        if not peak > 0:
            raise ValueError(f"`peak` must be a positive number. Received: peak={peak}")
        if not 0 <= warmup_steps < decay_steps:
            raise ValueError(
                "`warmup_steps` must be at least 0 and below `decay_steps`. Received: "
                f"warmup_steps={warmup_steps}, decay_steps={decay_steps}"
            )
        if not 0 <= final <= peak:
            raise ValueError(f"`final` must be in [0, peak]. Received: final={final}")
        self.peak = float(peak)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.final = float(final)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
        progress = ops.clip(progress, 0.0, 1.0)
        cosine = self.final + (self.peak - self.final) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {
            "peak": self.peak,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "final": self.final,
        }
