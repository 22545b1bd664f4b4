"""A variational autoencoder (`task=vae`) whose KL term comes from inside the model (`add_loss`).

The data is made in code: points on a curved 2-D sheet in `data_dim` dimensions,
`x = tanh(z A) + noise * e` with `z ~ N(0, I_2)` and `e ~ N(0, I)`; the target is the input.
The encoder gives the mean and log-variance of `q(z | x)`; the `Sampling` layer draws `z` from
it (its mean when not training) and adds the KL divergence from `N(0, I)` to the model's losses
with `add_loss`; the decoder maps `z` back. The step reads that term with `loop.model_losses`.

The loss of an example is the negative ELBO: the Gaussian reconstruction error at the data's
noise level, `|x - decoded|^2 / (2 noise^2)`, plus `kl_weight` times the KL term. Held out:
`eval_reconstruction` and `eval_kl`. Export serves the reconstruction of a batch of points.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from ..config import non_negative, positive
from ..data import Arrays
from .base import Task, TaskConfig


class Sampling(keras.layers.Layer):
    """`z ~ N(mean, exp(log_var))` of `[mean, log_var]` (the mean when not training or when
    `sample` is off); adds `weight` times the batch's mean KL divergence from `N(0, I)`."""

    def __init__(self, weight=1.0, sample=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.weight, self.sample, self.seed = weight, sample, seed
        self.seed_generator = keras.random.SeedGenerator(seed)  # its state is checkpointed

    def call(self, inputs, training=False):
        mean, log_var = inputs
        kl = -0.5 * ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        self.add_loss(self.weight * ops.mean(kl))
        if not (training and self.sample):
            return mean
        noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def get_config(self):
        return {
            **super().get_config(),
            "weight": self.weight,
            "sample": self.sample,
            "seed": self.seed,
        }


@dataclass
class VaeConfig(TaskConfig):
    train_size: int = positive(8192)
    test_size: int = positive(1024)
    data_dim: int = positive(16)
    noise: float = positive(0.1)
    latent_dim: int = positive(2)
    hidden_units: int = positive(64)
    kl_weight: float = non_negative(1.0)
    sample: bool = True  # off: z is the encoder's mean (a deterministic autoencoder plus KL)


class VaeTask(Task, name="vae"):
    """Learns a 2-D sheet in `data_dim` dimensions as a VAE; the KL term is the model's own loss."""

    config_class = VaeConfig
    identity_keys = ("data_dim", "latent_dim", "hidden_units")
    small_overrides = ("task.train_size=512", "task.test_size=128", "task.hidden_units=16")
    noise_free_overrides = ("task.sample=false",)

    def make_arrays(self) -> Arrays:
        c = self.config
        rng = np.random.default_rng(self.seed)
        sheet = rng.normal(0, 1.5, (2, c.data_dim))

        def draw(size):
            z = rng.standard_normal((size, 2))
            x = np.tanh(z @ sheet) + c.noise * rng.standard_normal((size, c.data_dim))
            return x.astype(np.float32)

        train, test = draw(c.train_size), draw(c.test_size)
        return Arrays(train, train, test, test)

    def build_model(self):
        c = self.config
        inputs = keras.Input((c.data_dim,))
        hidden = keras.layers.Dense(c.hidden_units, activation="relu")(inputs)
        # The posterior's parameters, the KL term and z in float32 (exp overflows in float16).
        mean = keras.layers.Dense(c.latent_dim, dtype="float32", name="mean")(hidden)
        log_var = keras.layers.Dense(c.latent_dim, dtype="float32", name="log_var")(hidden)
        sampling = Sampling(c.kl_weight, c.sample, self.seed, dtype="float32", name="sampling")
        z = sampling([mean, log_var])
        hidden = keras.layers.Dense(c.hidden_units, activation="relu")(z)
        outputs = keras.layers.Dense(c.data_dim, dtype="float32")(hidden)
        return keras.Model(inputs, outputs, name="vae")

    # -- the step -----------------------------------------------------------------------------
    def reconstruction_error(self, targets, decoded):
        """Each example's Gaussian negative log-likelihood at the data's noise, less a constant."""
        squared = ops.sum(ops.square(targets - decoded), axis=-1)
        return squared / (2 * self.config.noise**2)

    def train_step(self, batch, loop) -> dict:
        import tensorflow as tf

        inputs, targets = batch
        vae = loop.models["model"]
        with tf.GradientTape() as tape:
            decoded = vae(inputs, training=True)
            error = self.reconstruction_error(targets, decoded)  # one per example
            kl = loop.model_losses(vae)  # the Sampling layer's add_loss: this replica's mean
            loss = loop.compute_average_loss(error) + loop.scale_regularization_loss(kl)
        loop.apply_gradients(tape, loss)
        return self.logged(error, kl)

    def eval_step(self, batch, loop) -> dict:
        inputs, targets = batch
        vae = loop.models["model"]
        error = self.reconstruction_error(targets, vae(inputs, training=False))
        return self.logged(error, loop.model_losses(vae))

    @staticmethod
    def logged(error, kl) -> dict:
        """Per-example values: the batch's mean KL given to each of its examples, so the
        held-out mean is over examples whatever the batching (a scalar would count a short
        last batch as much as a full one)."""
        kl = ops.ones_like(error) * kl
        return {"loss": error + kl, "reconstruction": error, "kl": kl}

    # -- what is served -----------------------------------------------------------------------
    def serve(self, model, inputs) -> dict:
        return {"reconstruction": model(inputs, training=False)}
