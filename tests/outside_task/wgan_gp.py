"""A WGAN-GP on a ring of Gaussians (`task=wgan_gp`): five critic updates per generator update,
a gradient penalty from a nested tape (Gulrajani et al. 2017; keras-io's wgan_gp).

Each step: `critic_steps` updates of the critic on the batch's real points against points the
generator makes from fresh latents, each with the penalty `gp_weight * (|grad D(x_hat)| - 1)^2`
at random interpolates `x_hat` of real and generated points; then one generator update on the
batch's latents. Export serves the generator: `samples` for a batch of latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import OptimizerSettings, non_negative, positive
from ..data import Arrays
from .base import Task, TaskConfig


def _optimizers():
    # the paper's Adam: learning rate 1e-4, beta_1 0, beta_2 0.9
    settings = OptimizerSettings(learning_rate=1e-4, beta_1=0.0, beta_2=0.9)
    return {"generator": settings, "critic": OptimizerSettings(**vars(settings))}


@dataclass
class WganGpConfig(TaskConfig):
    optimizers: dict[str, OptimizerSettings] = field(default_factory=_optimizers)
    train_size: int = positive(16384)
    test_size: int = positive(2048)
    num_modes: int = positive(8)
    radius: float = positive(2.0)
    mode_stddev: float = positive(0.05)
    latent_dim: int = positive(8)
    hidden_units: int = positive(128)
    critic_steps: int = positive(5)
    gp_weight: float = non_negative(10.0)
    noise: bool = True  # off: the critic sees the batch's latents and midpoints (shared tests)


class WganGpTask(Task, name="wgan_gp"):
    config_class = WganGpConfig
    identity_keys = ("latent_dim", "hidden_units", "num_modes", "radius", "mode_stddev")
    small_overrides = ("task.train_size=512", "task.test_size=128", "task.hidden_units=16")
    noise_free_overrides = ("task.noise=false",)

    def make_arrays(self) -> Arrays:
        c = self.config
        rng = np.random.default_rng(self.seed)
        angles = 2 * math.pi * np.arange(c.num_modes) / c.num_modes
        centers = c.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

        def draw(size):
            points = centers[rng.integers(0, c.num_modes, size)]
            points = points + c.mode_stddev * rng.standard_normal((size, 2))
            latents = rng.standard_normal((size, c.latent_dim))
            return latents.astype(np.float32), points.astype(np.float32)

        return Arrays(*draw(c.train_size), *draw(c.test_size))

    def build_models(self) -> dict:
        import keras

        c = self.config

        def mlp(inputs, outputs, name):
            return keras.Sequential(
                [
                    keras.Input((inputs,)),
                    keras.layers.Dense(c.hidden_units, activation="relu"),
                    keras.layers.Dense(c.hidden_units, activation="relu"),
                    keras.layers.Dense(outputs, dtype="float32"),
                ],
                name=name,
            )

        critic = mlp(2, 1, "critic")
        critic.noise = keras.random.SeedGenerator(self.seed)  # checkpointed with the model
        return {"generator": mlp(c.latent_dim, 2, "generator"), "critic": critic}

    def optimizer_variables(self, models: dict) -> dict[str, list]:
        return {name: model.trainable_variables for name, model in models.items()}

    def train_step(self, batch, loop) -> dict:
        import keras
        import tensorflow as tf

        c = self.config
        latents, real = batch
        generator, critic = loop.models["generator"], loop.models["critic"]
        n = tf.shape(real)[0]
        for _ in range(c.critic_steps):  # unrolled at tracing
            z, mix = latents, tf.fill([n, 1], 0.5)
            if c.noise:
                z = keras.random.normal(tf.shape(latents), seed=critic.noise)
                mix = keras.random.uniform([n, 1], seed=critic.noise)
            with tf.GradientTape() as tape:
                fake = generator(z, training=True)
                between = mix * real + (1 - mix) * fake
                with tf.GradientTape() as inner:
                    inner.watch(between)
                    between_scores = critic(between, training=True)[:, 0]
                slope = tf.norm(inner.gradient(between_scores, between), axis=-1)
                penalty = c.gp_weight * tf.square(slope - 1)
                distance = critic(real, training=True)[:, 0] - critic(fake, training=True)[:, 0]
                critic_loss = loop.compute_average_loss(penalty - distance)
            loop.apply_gradients(tape, critic_loss, "critic")
        with tf.GradientTape() as tape:
            fake_scores = critic(generator(latents, training=True), training=True)[:, 0]
            generator_loss = loop.compute_average_loss(-fake_scores)
        loop.apply_gradients(tape, generator_loss, "generator")
        return {"distance": distance, "penalty": penalty, "generator_loss": -fake_scores}

    def eval_step(self, batch, loop) -> dict:
        latents, real = batch
        fake = loop.models["generator"](latents, training=False)
        critic = loop.models["critic"]
        return {"distance": critic(real, training=False)[:, 0] - critic(fake, training=False)[:, 0]}

    def serving_model(self, models: dict):
        return models["generator"]

    def serve(self, model, inputs) -> dict:
        return {"samples": model(inputs, training=False)}
