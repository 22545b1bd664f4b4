"""Regression made in code (`task=regression`): the residual regressor, Huber loss and MAE.

The data is deterministic from the seed (nothing is downloaded): `x ~ N(0, 1)` of shape
`(n, input_dim)`, and `y = sin(2 x.w) + 0.5 (x.v)^2 + label_noise * N(0, 1)`, shape `(n, 1)`.
Your own data: `data.path=/path/to/data.npz` with float arrays `x_train` `(n, d)`, `y_train`
`(n,)` or `(n, 1)`, and the same for `x_test`, `y_test`.

>>> task = RegressionTask(RegressionConfig(input_dim=4, train_size=32, test_size=8), seed=0)
>>> [split.shape for split in task.arrays()]
[(32, 4), (32, 1), (8, 4), (8, 1)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import non_negative, positive
from ..data import Arrays
from ..errors import RunError
from .base import Task, TaskConfig


@dataclass
class RegressionConfig(TaskConfig):
    # Data made in code (unused with data.path).
    train_size: int = positive(8192)  # training examples
    test_size: int = positive(2048)  # held-out examples
    input_dim: int = positive(8)  # features per example
    label_noise: float = non_negative(0.05)  # stddev of the noise added to the targets
    # The model (models/residual_regressor.py).
    hidden_units: int = positive(64)  # width of the residual blocks
    num_blocks: int = non_negative(2)  # residual blocks
    noise_stddev: float = non_negative(0.05)  # Gaussian noise on the inputs, in training only
    reconstruction_weight: float = non_negative(0.05)  # weight of the input-reconstruction loss
    l1: float = non_negative(1e-5)  # L1 penalty on the kernels
    # The loss (components/losses.py): quadratic below this error, linear above.
    huber_threshold: float = positive(1.0)


class RegressionTask(Task, name="regression"):
    """Fits one float target per example; reports the exact mean absolute error."""

    config_class = RegressionConfig
    identity_keys = (
        "input_dim",
        "hidden_units",
        "num_blocks",
        "noise_stddev",
        "reconstruction_weight",
        "l1",
    )
    small_overrides = (
        "task.train_size=512",
        "task.test_size=96",
        "task.hidden_units=16",
        "task.num_blocks=1",
    )
    noise_free_overrides = ("task.noise_stddev=0",)

    def make_arrays(self) -> Arrays:
        c = self.config
        rng = np.random.default_rng(self.seed)
        directions = rng.standard_normal((2, c.input_dim)) / np.sqrt(c.input_dim)
        return Arrays(
            *self._draw(c.train_size, rng, directions), *self._draw(c.test_size, rng, directions)
        )

    def _draw(self, size, rng, directions):
        x = rng.standard_normal((size, self.config.input_dim)).astype(np.float32)
        w, v = directions
        y = np.sin(2.0 * x @ w) + 0.5 * (x @ v) ** 2
        y = y + self.config.label_noise * rng.standard_normal(size)
        return x, y.astype(np.float32)[:, None]

    def check_arrays(self, arrays: Arrays, source: str) -> Arrays:
        checked = []
        for name, array in zip(Arrays._fields, arrays):
            array = np.asarray(array, np.float32)
            if name.startswith("y") and array.ndim == 1:
                array = array[:, None]
            if name.startswith("x") and array.ndim != 2:
                raise RunError(f"{source}: {name} has shape {array.shape}; expected (n, features)")
            if name.startswith("y") and array.shape[1:] != (1,):
                raise RunError(
                    f"{source}: {name} has shape {array.shape}; expected (n,) or (n, 1), one "
                    "target per example"
                )
            if not np.isfinite(array).all():
                raise RunError(f"{source}: {name} holds NaN or infinite values")
            checked.append(array)
        return Arrays(*checked)

    def build_model(self):
        from ..models import ResidualRegressor

        c = self.config
        return ResidualRegressor(
            hidden_units=c.hidden_units,
            num_blocks=c.num_blocks,
            output_units=1,
            noise_stddev=c.noise_stddev,
            reconstruction_weight=c.reconstruction_weight,
            l1=c.l1,
            seed=self.seed,
        )

    def build_loss(self, reduction="sum_over_batch_size"):
        from ..components.losses import HuberLoss

        return HuberLoss(self.config.huber_threshold, reduction=reduction)

    def build_metrics(self) -> list:
        from ..components.metrics import StreamingMAE

        return [StreamingMAE(name="mae")]

    def variable_groups(self, model) -> dict[str, list]:
        return model.variable_groups()
