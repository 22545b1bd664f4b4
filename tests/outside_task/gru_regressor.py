"""A researcher's own task, written outside the project as a plain Keras file.

Top-level imports, the model class in the same file, Keras' default (unseeded) initializers,
no model losses of its own, no `variable_groups`: dropped into `tasks/` as the only change, it
must get every per-task guarantee of the baked project (tests/test_baked_projects.py).
"""

from dataclasses import dataclass

import keras
import numpy as np

from ..config import positive
from ..data import Arrays
from .base import Task, TaskConfig


class GRURegressor(keras.Model):
    """A GRU over the window, then one linear output."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.gru = keras.layers.GRU(units)
        self.head = keras.layers.Dense(1)

    def call(self, inputs):
        return self.head(self.gru(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@dataclass
class GRUConfig(TaskConfig):
    units: int = positive(8)
    size: int = positive(512)
    window: int = positive(6)


class GRUTask(Task, name="gru_regressor"):
    """y = 0.3 * (the sum of the window), from windows of Gaussian noise."""

    config_class = GRUConfig
    identity_keys = ("units", "window")

    def make_arrays(self):
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.config.size, self.config.window, 1)).astype("float32")
        y = 0.3 * x.sum(axis=1)
        split = self.config.size * 3 // 4
        return Arrays(x[:split], y[:split], x[split:], y[split:])

    def build_model(self):
        return GRURegressor(self.config.units)

    def build_loss(self, reduction="sum_over_batch_size"):
        return keras.losses.MeanSquaredError(reduction=reduction)

    def build_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]
