"""What each configuration key accepts, and the checks Hydra's types cannot express, a function a
section.

The field helpers (`positive`, `non_negative`, `fraction`, `one_of`) declare what a key accepts,
for the loop's sections and every task's alike; `check_config` checks a whole `Config` (see
`config.py`) and raises `ConfigError` with one line naming the first bad key. Nothing here
imports TensorFlow, so a bad command line is refused in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import ConfigError
from .support import unsupported_reason


# -- what a key accepts: dataclass field metadata, read by `check_fields` for every section ------
def positive(default):
    """A field that must be greater than zero (and finite)."""
    return field(default=default, metadata={"check": "positive"})


def non_negative(default):
    """A field that must be zero or more (and finite)."""
    return field(default=default, metadata={"check": "non_negative"})


def fraction(default):
    """A field in [0, 1)."""
    return field(default=default, metadata={"check": "fraction"})


def one_of(default, choices):
    """A string field limited to `choices`."""
    return field(default=default, metadata={"choices": tuple(choices)})


OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "warmup_cosine")


@dataclass
class OptimizerSettings:
    """One named optimizer's own settings (`task.optimizers.<name>.<key>`); an unset key (null)
    takes the `optimizer` section's value, or the optimizer's own default for the betas."""

    name: str | None = field(default=None, metadata={"choices": (None, *OPTIMIZERS)})
    learning_rate: float | None = positive(None)
    schedule: str | None = field(default=None, metadata={"choices": (None, *SCHEDULES)})
    # Adam's and AdamW's moment decays (a GAN's often take beta_1=0.5); other optimizers have
    # none and go without.
    beta_1: float | None = fraction(None)
    beta_2: float | None = fraction(None)


def check_fields(section, prefix: str) -> None:
    """Checks every field of the dataclass `section` (and of nested ones) against its metadata;
    raises `ConfigError` naming the first bad key, e.g. `task.hidden_units=-1`."""
    for spec in dataclasses.fields(section):
        key, value = f"{prefix}{spec.name}", getattr(section, spec.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, f"{key}.")
            continue
        if isinstance(value, dict):  # named sections, e.g. task.optimizers.<name>
            for name, item in value.items():
                if dataclasses.is_dataclass(item):
                    check_fields(item, f"{key}.{name}.")
            continue
        if value is None:  # an unset optional key
            continue
        check = spec.metadata.get("check")
        if check and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value}: must be a finite number")
        if check == "positive" and not value > 0:
            kind = "number" if isinstance(value, float) else "integer"
            raise ConfigError(f"{key}={value}: must be a positive {kind}")
        if check == "non_negative" and not value >= 0:
            raise ConfigError(f"{key}={value}: must be zero or more")
        if check == "fraction" and not 0 <= value < 1:
            raise ConfigError(f"{key}={value}: must be at least 0 and below 1")
        choices = spec.metadata.get("choices")
        if choices and value not in choices:
            allowed = ", ".join(str(choice) for choice in choices if choice is not None)
            raise ConfigError(f"{key}={value}: must be one of {allowed}")


# -- the checks between keys, a function a section -------------------------------------------------
def check_config(cfg) -> None:
    """Checks every key of `cfg` (a `Config`), then the keys that depend on each other, section
    by section; raises `ConfigError` naming the first bad key."""
    check_fields(cfg, "")
    for check in (
        check_run_dir,
        check_data,
        check_counts,
        check_distribute,
        check_train,
        check_profile,
        check_checkpoint,
        check_optimizer,
    ):
        check(cfg)


def check_run_dir(cfg) -> None:
    if not cfg.run_dir.strip():
        raise ConfigError("run_dir='': must name a directory")


def check_data(cfg) -> None:
    if cfg.data.limit_train and cfg.data.limit_train < cfg.train.batch_size:
        raise ConfigError(
            f"data.limit_train={cfg.data.limit_train}: fewer examples than one batch "
            f"(train.batch_size={cfg.train.batch_size})"
        )
    if cfg.data.limit_train and cfg.data.files:
        raise ConfigError(
            f"data.limit_train={cfg.data.limit_train} with data.files={cfg.data.files}: the "
            "limit applies to data in memory (prepare fewer shards instead)"
        )


COUNTED_KEYS = (
    "train.steps",
    "train.steps_per_execution",
    "train.log_every_steps",
    "train.batch_size",
    "eval.every_steps",
    "eval.batch_size",
    "checkpoint.every_steps",
    "profile.stop_step",
)
MAX_COUNT = 2**31 - 1


def check_counts(cfg) -> None:
    """The loop counts steps and cadences in 32-bit integers."""
    for key in COUNTED_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value > MAX_COUNT:
            raise ConfigError(f"{key}={value}: more than the loop can count; at most {MAX_COUNT}")


def check_distribute(cfg) -> None:
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


def check_train(cfg) -> None:
    if cfg.train.batch_size % cfg.train.accumulate_steps:
        raise ConfigError(
            f"train.accumulate_steps={cfg.train.accumulate_steps}: must divide "
            f"train.batch_size={cfg.train.batch_size} into equal micro-batches"
        )


def check_profile(cfg) -> None:
    profile = cfg.profile
    if profile.stop_step and not profile.start_step < profile.stop_step <= cfg.train.steps:
        raise ConfigError(
            f"profile.stop_step={profile.stop_step}: must be above profile.start_step="
            f"{profile.start_step} and at most train.steps={cfg.train.steps}"
        )


def check_checkpoint(cfg) -> None:
    best = cfg.checkpoint.best_metric
    if best and not best.startswith("eval_"):
        raise ConfigError(
            f"checkpoint.best_metric={best}: must be an evaluation value, e.g. eval_loss"
        )
    if cfg.checkpoint.patience and not best:
        raise ConfigError(
            f"checkpoint.patience={cfg.checkpoint.patience}: early stopping watches "
            "checkpoint.best_metric; set it too, e.g. checkpoint.best_metric=eval_loss"
        )


def check_optimizer(cfg) -> None:
    optimizer = cfg.optimizer
    decay_steps = optimizer.decay_steps or cfg.train.steps
    if optimizer.schedule == "warmup_cosine" and optimizer.warmup_steps >= decay_steps:
        raise ConfigError(
            f"optimizer.warmup_steps={optimizer.warmup_steps}: must be below the decay steps "
            f"({decay_steps}: optimizer.decay_steps, or train.steps when it is 0)"
        )
    if optimizer.schedule == "warmup_cosine" and optimizer.min_learning_rate > min(
        rate for rate in (optimizer.learning_rate, optimizer.head_learning_rate) if rate
    ):
        raise ConfigError(
            f"optimizer.min_learning_rate={optimizer.min_learning_rate}: must not exceed the "
            "rates it decays from (optimizer.learning_rate, optimizer.head_learning_rate)"
        )


# Keys renamed: {old: new}. `callbacks` named the actions the loop runs besides its own.
RENAMED_KEYS = {"callbacks": "actions"}


def check_renamed_keys(overrides) -> None:
    """Refuses, in one line, an override of a key that was renamed.

    >>> try:
    ...     check_renamed_keys(["train.steps=5", "callbacks=[mlflow]"])
    ... except ConfigError as error:
    ...     print(error)
    callbacks=[mlflow]: callbacks= is now actions=, e.g. actions=[mlflow]
    """
    for override in overrides:
        bare = override.lstrip("+~")
        key, _, value = bare.partition("=")
        old = key.split(".")[0]
        if old in RENAMED_KEYS:
            new = f"{override[: len(override) - len(bare)]}{RENAMED_KEYS[old]}{key[len(old) :]}"
            raise ConfigError(f"{override}: {old}= is now {RENAMED_KEYS[old]}=, e.g. {new}={value}")
