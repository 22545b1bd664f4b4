"""Typed run configuration: Hydra structured configs plus the value checks Hydra cannot express.

`load_config(["train.steps=100", "distribute=mirrored"])` composes `conf/config.yaml` with the
overrides, checks every value, and returns a `Config`. Any problem raises `ConfigError` with one
line naming the key; the entry points print that line and exit 2 before anything is written.
This module never imports TensorFlow, so a bad command line is refused in a fraction of a second.

>>> cfg = load_config(["train.steps=10", "train.batch_size=32"])
>>> cfg.train.steps, cfg.train.batch_size
(10, 32)
>>> load_config(["train.batch_size=-4"])
Traceback (most recent call last):
...
{{ cookiecutter.package_name }}.config.ConfigError: train.batch_size=-4: must be a positive integer
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .support import PRECISIONS, STRATEGIES, unsupported_reason


class ConfigError(ValueError):
    """A configuration value that cannot run; the message is one line naming the key."""


@dataclass
class TrainConfig:
    steps: int = 3000
    # Global batch: split evenly over the replicas (per-replica batch = batch_size / replicas).
    batch_size: int = 64
    # Steps run per tf.function call; a call also ends at every log, eval and checkpoint step,
    # so cadences stay exact and calls are at most log_every_steps long. 100 ran 3-17% faster
    # than 25 on 2 CPU cores (the `bench` module's steps_per_execution section).
    steps_per_execution: int = 100
    # One metrics.jsonl line and TensorBoard point; each costs ~1.5 ms between compiled calls.
    # 0 (auto): every 100 steps, or every steps / 10 in a run shorter than 1000 steps, so even a
    # short run draws its curve.
    log_every_steps: int = 0
    # Clip gradients to this global norm before they are applied; 0 turns clipping off.
    clip_norm: float = 0.0
    jit_compile: bool = False


@dataclass
class OptimizerConfig:
    name: str = "adam"
    learning_rate: float = 2e-3
    # A separate optimizer (same kind) for the model's head with its own rate; 0 means one
    # optimizer for every variable.
    head_learning_rate: float = 0.0


@dataclass
class CheckpointConfig:
    every_steps: int = 500
    # Older checkpoints kept as fallbacks when the newest is damaged.
    max_to_keep: int = 3
    # Start from scratch when run_dir holds checkpoints but none is readable.
    allow_fresh_start: bool = False


@dataclass
class EvalConfig:
    every_steps: int = 500
    # Held-out examples per batch (split over the replicas like train.batch_size). Evaluation
    # keeps no activations for gradients, so it takes larger batches than training: at 512 a
    # pass over the default 2048 examples took 3.2 ms, at 64 6.4 ms (2 CPU cores).
    batch_size: int = 512


@dataclass
class DataConfig:
    # An .npz with x_train, y_train, x_test, y_test; empty means the default task made in code.
    path: str = ""
    train_size: int = 8192
    test_size: int = 2048
    input_dim: int = 8
    label_noise: float = 0.05


@dataclass
class ModelConfig:
    hidden_units: int = 64
    num_blocks: int = 2
    noise_stddev: float = 0.05
    reconstruction_weight: float = 0.05
    l1: float = 1e-5


@dataclass
class LossConfig:
    huber_threshold: float = 1.0


@dataclass
class DistributeConfig:
    strategy: str = "none"
    cpu_devices: int = 0
    tpu: str = ""


@dataclass
class PrecisionConfig:
    policy: str = "float32"


@dataclass
class Config:
    run_dir: str = "runs/default"
    seed: int = 42
    # Op determinism plus fixed seeds: a resumed run is bitwise equal to an uninterrupted one.
    deterministic: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)


ConfigStore.instance().store(name="base", node=Config)

AUTO_LOG_EVERY_STEPS = 100
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

_POSITIVE = (
    "train.steps",
    "train.batch_size",
    "train.steps_per_execution",
    "checkpoint.every_steps",
    "checkpoint.max_to_keep",
    "eval.every_steps",
    "eval.batch_size",
    "data.train_size",
    "data.test_size",
    "data.input_dim",
    "model.hidden_units",
    "model.num_blocks",
    "optimizer.learning_rate",
    "loss.huber_threshold",
)
_NON_NEGATIVE = (
    "train.log_every_steps",
    "train.clip_norm",
    "optimizer.head_learning_rate",
    "data.label_noise",
    "model.noise_stddev",
    "model.reconstruction_weight",
    "model.l1",
    "distribute.cpu_devices",
    "seed",
)
_CHOICES = {
    "distribute.strategy": STRATEGIES,
    "precision.policy": PRECISIONS,
    "optimizer.name": OPTIMIZERS,
}


def _get(cfg: Config, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> Config:
    """Checks the values Hydra's types cannot; raises `ConfigError` naming the first bad key."""
    for key in _POSITIVE:
        if not _get(cfg, key) > 0:
            kind = "number" if isinstance(_get(cfg, key), float) else "integer"
            raise ConfigError(f"{key}={_get(cfg, key)}: must be a positive {kind}")
    for key in _NON_NEGATIVE:
        if _get(cfg, key) < 0:
            raise ConfigError(f"{key}={_get(cfg, key)}: must be zero or more")
    for key, allowed in _CHOICES.items():
        if _get(cfg, key) not in allowed:
            raise ConfigError(f"{key}={_get(cfg, key)}: must be one of {', '.join(allowed)}")
    if not cfg.run_dir.strip():
        raise ConfigError("run_dir='': must name a directory")
    if not cfg.train.log_every_steps:
        cfg.train.log_every_steps = max(1, min(AUTO_LOG_EVERY_STEPS, cfg.train.steps // 10))
    reason = unsupported_reason(cfg.distribute.strategy, cfg.precision.policy)
    if reason:
        raise ConfigError(
            f"distribute={cfg.distribute.strategy} with precision={cfg.precision.policy}: "
            f"not supported ({reason})"
        )
    if cfg.distribute.cpu_devices and cfg.distribute.strategy != "mirrored":
        raise ConfigError(
            f"distribute.cpu_devices={cfg.distribute.cpu_devices}: only used by distribute=mirrored"
            f" (got distribute={cfg.distribute.strategy})"
        )
    if cfg.train.jit_compile and cfg.distribute.cpu_devices:
        raise ConfigError(
            f"train.jit_compile=true with distribute.cpu_devices={cfg.distribute.cpu_devices}: "
            "XLA cannot run replicas on logical CPU devices; use one device or GPUs"
        )
    if cfg.optimizer.head_learning_rate and cfg.precision.policy == "mixed_float16":
        raise ConfigError(
            f"optimizer.head_learning_rate={cfg.optimizer.head_learning_rate}: a second optimizer"
            " cannot share loss scaling; use one optimizer with precision=mixed_float16"
        )
    return cfg


def _one_line(error: Exception) -> str:
    """Hydra and OmegaConf errors carry the useful part in their cause; keep the first lines."""
    parts = []
    while error is not None and len(parts) < 2:
        lines = str(error).strip().splitlines()
        if lines and lines[0] not in parts:
            parts.append(lines[0])
        listed = [i for i, line in enumerate(lines) if line.startswith("Available options")]
        if listed:  # an unknown group option: name the real ones
            options = []
            for line in lines[listed[0] + 1 :]:
                if not line.startswith("\t"):
                    break
                options.append(line.strip())
            parts.append("choose one of " + ", ".join(options))
        error = error.__cause__
    return ": ".join(parts) or type(error).__name__


def load_config(overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Composes the packaged config with `key=value` overrides and checks it."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=f"{__package__}.conf", version_base=None):
            composed = compose(config_name="config", overrides=list(overrides))
        cfg = OmegaConf.to_object(composed)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"bad configuration: {_one_line(error)}") from None
    return validate(cfg)


def saved_run_config(cfg: Config) -> Config:
    """The config a finished run used (its run.json), with `run_dir` and `distribute` from `cfg`.

    `evaluate` and `export` rebuild the exact model of a run this way, on any strategy.
    """
    path = os.path.join(cfg.run_dir, "run.json")
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)["config"]
    except FileNotFoundError:
        raise ConfigError(
            f"run_dir={cfg.run_dir}: no run.json there; train into it first"
        ) from None
    except (ValueError, KeyError):
        raise ConfigError(f"{path}: not a run.json written by training") from None
    saved["run_dir"] = cfg.run_dir
    saved["distribute"] = dataclasses.asdict(cfg.distribute)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), saved)
        return validate(OmegaConf.to_object(merged))
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"{path}: {_one_line(error)}") from None


def to_dict(cfg: Config) -> dict:
    """The resolved configuration as plain data (for run.json and comparisons)."""
    return dataclasses.asdict(cfg)
