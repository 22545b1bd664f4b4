"""Moving averages of the weights (`optimizer.ema_decay`): swapped into the models to evaluate,
keep the best and export, and back out to train on.

Keras keeps the averages in each optimizer (`use_ema`), so in the checkpoint, one per variable
it was built with, in the same order; a swap exchanges each variable with its average, exactly
both ways.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf


class WeightAverages:
    """The averages of every optimizer's variables, and the swap of them with the variables."""

    def __init__(self, optimizers: dict, variables: dict, cfg):
        self.enabled = bool(cfg.optimizer.ema_decay)
        self._pairs = list(zip(optimizers.values(), variables.values()))
        self._swap = tf.function(self._swap_all)

    def _swap_all(self):
        for optimizer, variables in self._pairs:
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
            for variable, average in zip(variables, inner._model_variables_moving_average):
                raw = tf.identity(variable)
                variable.assign(average)
                average.assign(raw)

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the models hold the averages (nothing changes when disabled)."""
        if not self.enabled:
            yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def use(self) -> None:
        """Puts the averages into the models for good (evaluate, export)."""
        if self.enabled:
            self._swap()
