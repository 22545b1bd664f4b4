"""A GAN on a ring of Gaussians (`task=gan`): two models, two optimizers, a step of its own.

The data is made in code: `num_modes` Gaussians of standard deviation `mode_stddev` evenly on a
circle of radius `radius` (the classic test of mode collapse). Each example pairs a latent vector
`z ~ N(0, I)` (the input, `(n, latent_dim)`) with a real point (the target, `(n, 2)`); the
generator maps latents to points, the discriminator tells real points from generated ones.

The training step is the task's own (`train_step` below): the discriminator's update on real
and generated points with an R1 gradient penalty on the real ones (a nested tape), then the
generator's non-saturating update, each with its optimizer (`task.optimizers.generator.*`,
`task.optimizers.discriminator.*`). Everything a strategy or a precision policy needs comes from
`loop` (global-batch means, loss scaling, clipping), so the step is the same on one device, on
several replicas and in mixed precision.

Held out, `eval_loss` is the discriminator's loss on held-out and generated points (2 ln 2 =
1.386 when it cannot tell them apart). Quality, on the held-out latents: `eval_high_quality`,
the share of generated points within 3 standard deviations of a mode, and `eval_modes`, the
modes that hold at least a quarter of their fair share of the points; against the data's own
figures, `eval_real_high_quality` (98.9% for a 2-D Gaussian) and `eval_real_modes` (every
mode). Export serves the generator: `samples` for a batch of latents.

>>> task = GanTask(GanConfig(train_size=16, test_size=8), seed=0)
>>> [split.shape for split in task.arrays()]
[(16, 8), (16, 2), (8, 8), (8, 2)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import OptimizerSettings, non_negative, positive
from ..data import Arrays
from ..errors import RunError
from .base import Task, TaskConfig


def _optimizers():
    # Adam with beta_1=0.5, the GAN literature's usual choice: a long memory of the gradient
    # lags behind an opponent that moves. The rates are `optimizer.learning_rate` unless set
    # here or on the command line (`task.optimizers.discriminator.learning_rate=4e-3`).
    return {
        "generator": OptimizerSettings(beta_1=0.5),
        "discriminator": OptimizerSettings(beta_1=0.5),
    }


@dataclass
class GanConfig(TaskConfig):
    optimizers: dict[str, OptimizerSettings] = field(default_factory=_optimizers)
    # The data made in code (unused with data.path).
    train_size: int = positive(16384)
    test_size: int = positive(2048)
    num_modes: int = positive(8)
    radius: float = positive(2.0)
    mode_stddev: float = positive(0.05)
    # The models: two hidden layers of `hidden_units` each.
    latent_dim: int = positive(8)
    hidden_units: int = positive(128)
    # The R1 penalty's weight: gamma / 2 * |grad_x D(x)|^2 on real points.
    r1_gamma: float = non_negative(0.1)


class GanTask(Task, name="gan"):
    """Learns to sample a ring of Gaussians; reports mode coverage against the data's own."""

    config_class = GanConfig
    identity_keys = ("latent_dim", "hidden_units", "num_modes", "radius", "mode_stddev")
    small_overrides = ("task.train_size=512", "task.test_size=128", "task.hidden_units=16")

    def make_arrays(self) -> Arrays:
        c = self.config
        rng = np.random.default_rng(self.seed)

        def draw(size):
            modes = rng.integers(0, c.num_modes, size)
            points = self.centers()[modes] + c.mode_stddev * rng.standard_normal((size, 2))
            latents = rng.standard_normal((size, c.latent_dim))
            return latents.astype(np.float32), points.astype(np.float32)

        return Arrays(*draw(c.train_size), *draw(c.test_size))

    def centers(self) -> np.ndarray:
        c = self.config
        angles = 2 * math.pi * np.arange(c.num_modes) / c.num_modes
        return c.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def check_arrays(self, arrays: Arrays, source: str) -> Arrays:
        checked = [np.asarray(array, np.float32) for array in arrays]
        for name, array in zip(Arrays._fields, checked):
            width = self.config.latent_dim if name.startswith("x") else 2
            if array.ndim != 2 or array.shape[1] != width:
                raise RunError(
                    f"{source}: {name} has shape {array.shape}; expected (n, {width}) "
                    f"({'latent vectors' if width != 2 else 'points'})"
                )
        return Arrays(*checked)

    # -- two models, two optimizers -----------------------------------------------------------
    def build_models(self) -> dict:
        import keras

        c = self.config

        def mlp(inputs, outputs, name):
            return keras.Sequential(
                [
                    keras.Input((inputs,)),
                    keras.layers.Dense(c.hidden_units, activation="leaky_relu"),
                    keras.layers.Dense(c.hidden_units, activation="leaky_relu"),
                    keras.layers.Dense(outputs, dtype="float32"),  # outputs in float32
                ],
                name=name,
            )

        return {
            "generator": mlp(c.latent_dim, 2, "generator"),
            "discriminator": mlp(2, 1, "discriminator"),
        }

    def optimizer_variables(self, models: dict) -> dict[str, list]:
        return {name: model.trainable_variables for name, model in models.items()}

    def build_metrics(self) -> list:
        from ..components.metrics import ModeCoverage

        centers, stddev = self.centers(), self.config.mode_stddev
        return [
            ModeCoverage(centers, stddev, "modes", name="modes"),
            ModeCoverage(centers, stddev, "high_quality", name="high_quality"),
            ModeCoverage(centers, stddev, "modes", of_targets=True, name="real_modes"),
            ModeCoverage(
                centers, stddev, "high_quality", of_targets=True, name="real_high_quality"
            ),
        ]

    # -- the step -----------------------------------------------------------------------------
    def train_step(self, batch, loop) -> dict:
        import tensorflow as tf

        latents, real = batch
        generator, discriminator = loop.models["generator"], loop.models["discriminator"]
        with tf.GradientTape() as tape:
            fake = generator(latents, training=True)
            with tf.GradientTape() as inner:  # R1: the discriminator's slope at real points
                inner.watch(real)
                real_logits = discriminator(real, training=True)[:, 0]
            slope = inner.gradient(real_logits, real)
            r1 = tf.reduce_sum(tf.square(slope), axis=-1)
            fake_logits = discriminator(fake, training=True)[:, 0]
            d_per_example = tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)
            d_loss = loop.compute_average_loss(d_per_example + self.config.r1_gamma / 2 * r1)
        loop.apply_gradients(tape, d_loss, "discriminator")
        with tf.GradientTape() as tape:
            fake_logits = discriminator(generator(latents, training=True), training=True)[:, 0]
            g_per_example = tf.nn.softplus(-fake_logits)  # non-saturating
            g_loss = loop.compute_average_loss(g_per_example)
        loop.apply_gradients(tape, g_loss, "generator")
        return {"d_loss": d_per_example, "g_loss": g_per_example, "r1": r1}

    def eval_step(self, batch, loop) -> dict:
        import tensorflow as tf

        latents, real = batch
        generator, discriminator = loop.models["generator"], loop.models["discriminator"]
        fake = generator(latents, training=False)
        for metric in loop.metrics:
            metric.update_state(real, fake)
        # The discriminator's loss on held-out points: 2 ln 2 = 1.386 when it cannot tell.
        real_logits = discriminator(real, training=False)[:, 0]
        fake_logits = discriminator(fake, training=False)[:, 0]
        return {"loss": tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)}

    def figures(self, models: dict, source, step: int) -> dict:
        from matplotlib.figure import Figure

        x, y = next(iter(source.eval_dataset(1024)))  # held-out latents and real points
        fake = np.asarray(models["generator"](x, training=False))
        figure = Figure(figsize=(4.5, 4.5))
        axes = figure.subplots()
        axes.scatter(*np.asarray(y).T, s=3, alpha=0.4, label="real")
        axes.scatter(*fake.T, s=3, alpha=0.4, label="generated")
        axes.set(aspect="equal", title=f"samples, step {step}")
        axes.legend(loc="upper right", fontsize="small", markerscale=3)
        return {"samples": figure}

    # -- what is served -----------------------------------------------------------------------
    def serving_model(self, models: dict):
        return models["generator"]

    def serve(self, model, inputs) -> dict:
        return {"samples": model(inputs, training=False)}
