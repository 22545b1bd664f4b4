"""Sequences made in code (`task=sequence`): two named outputs from one window of a signal.

Each example is a window of `window` values of a noisy sine wave (random amplitude, frequency
and phase, deterministic from the seed); the model predicts the `next_value` after the window
(regression: Huber loss, MAE) and the `direction`, whether it is above the window's last value
(classification into down / up: cross-entropy, accuracy). The objective is
`huber(next_value) + direction_weight * cross_entropy(direction)`; each head's loss and metric
is logged on its own (`next_value_loss`, `next_value_mae`, `direction_loss`,
`direction_accuracy`) and any of them can pick the best checkpoint.

Your own data: `data.path=/path/to/data.npz` with float `x_train` `(n, window)` or
`(n, window, 1)`, float `y_train.next_value` `(n,)` or `(n, 1)` and integer
`y_train.direction` `(n,)` of 0 or 1, and the same for `x_test`, `y_test`.

>>> task = SequenceTask(SequenceConfig(window=6, train_size=32, test_size=8), seed=0)
>>> arrays = task.arrays()
>>> arrays.x_train.shape, {name: y.shape for name, y in arrays.y_train.items()}
((32, 6, 1), {'next_value': (32, 1), 'direction': (32,)})
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import non_negative, positive
from ..data import Arrays
from ..errors import RunError
from .base import Task, TaskConfig

OUTPUTS = ("direction", "next_value")


@dataclass
class SequenceConfig(TaskConfig):
    # Data made in code (unused with data.path).
    train_size: int = positive(4096)  # training windows
    test_size: int = positive(1024)  # held-out windows
    window: int = positive(12)  # values per window
    signal_noise: float = non_negative(0.05)  # stddev of the noise on the signal
    # The model (models/sequence_forecaster.py).
    hidden_units: int = positive(32)  # width of the per-step and shared dense layers
    attention_units: int = positive(16)  # width of the attention score
    # The objective: huber(next_value) + direction_weight * cross_entropy(direction).
    direction_weight: float = non_negative(0.5)
    huber_threshold: float = positive(1.0)  # next_value's Huber loss: quadratic below, linear above


class SequenceTask(Task, name="sequence"):
    """Forecasts the next value of a signal and whether it goes up, from one window."""

    config_class = SequenceConfig
    identity_keys = ("window", "hidden_units", "attention_units")
    small_overrides = (
        "task.train_size=512",
        "task.test_size=96",
        "task.hidden_units=8",
        "task.attention_units=4",
    )

    def make_arrays(self) -> Arrays:
        rng = np.random.default_rng(self.seed)
        return Arrays(
            *self._draw(self.config.train_size, rng), *self._draw(self.config.test_size, rng)
        )

    def _draw(self, size, rng):
        c = self.config
        amplitude = rng.uniform(0.5, 1.5, (size, 1))
        frequency = rng.uniform(0.2, 0.9, (size, 1))
        phase = rng.uniform(0, 2 * np.pi, (size, 1))
        signal = amplitude * np.sin(frequency * np.arange(c.window + 1) + phase)
        signal = (signal + c.signal_noise * rng.standard_normal(signal.shape)).astype(np.float32)
        window, following = signal[:, :-1, None], signal[:, -1:]
        direction = (following[:, 0] > window[:, -1, 0]).astype(np.int32)
        return window, {"next_value": following, "direction": direction}

    def check_arrays(self, arrays: Arrays, source: str) -> Arrays:
        checked = []
        for name, value in zip(Arrays._fields, arrays):
            if name.startswith("x"):
                value = np.asarray(value, np.float32)
                value = value[..., None] if value.ndim == 2 else value
                if value.ndim != 3 or value.shape[-1] != 1:
                    raise RunError(
                        f"{source}: {name} has shape {value.shape}; expected (n, window) or "
                        "(n, window, 1)"
                    )
                if not np.isfinite(value).all():
                    raise RunError(f"{source}: {name} holds NaN or infinite values")
            else:
                if not isinstance(value, dict) or sorted(value) != list(OUTPUTS):
                    found = sorted(value) if isinstance(value, dict) else "one unnamed array"
                    raise RunError(
                        f"{source}: {name} holds {found}; expected named targets "
                        f"{name}.next_value and {name}.direction"
                    )
                next_value = np.asarray(value["next_value"], np.float32).reshape(-1, 1)
                direction = np.asarray(value["direction"])
                if direction.ndim != 1 or not np.isin(direction, (0, 1)).all():
                    raise RunError(
                        f"{source}: {name}.direction must be 0 (down) or 1 (up), shape (n,)"
                    )
                value = {"next_value": next_value, "direction": direction.astype(np.int32)}
            checked.append(value)
        return Arrays(*checked)

    def build_model(self):
        from ..models import SequenceForecaster

        c = self.config
        return SequenceForecaster(c.hidden_units, c.attention_units, seed=self.seed)

    def build_loss(self, reduction="sum_over_batch_size"):
        from ..components.losses import HuberLoss, SparseCrossEntropy

        return {
            "next_value": HuberLoss(self.config.huber_threshold, reduction=reduction),
            "direction": SparseCrossEntropy(reduction=reduction),
        }

    def loss_weights(self) -> dict[str, float]:
        return {"direction": self.config.direction_weight}

    def build_metrics(self) -> dict:
        from ..components.metrics import StreamingAccuracy, StreamingMAE

        return {"next_value": [StreamingMAE(name="mae")], "direction": [StreamingAccuracy()]}

    def serve(self, model, inputs) -> dict:
        import tensorflow as tf

        outputs = model(inputs, training=False)
        return {
            "next_value": outputs["next_value"][:, 0],
            "up_probability": tf.nn.softmax(outputs["direction"], axis=-1)[:, 1],
        }
