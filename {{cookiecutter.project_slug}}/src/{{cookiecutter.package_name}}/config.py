"""Typed run configuration: Hydra structured configs plus the value checks Hydra cannot express.

`load_config(["train.steps=100", "distribute=mirrored"])` composes `conf/config.yaml` with the
overrides, checks every value, and returns a `Config`. Any problem raises `ConfigError` with one
line naming the key; the entry points print that line and exit 2 before anything is written.
This module never imports TensorFlow, so a bad command line is refused in a fraction of a second.
`cfg.task` is the selected task's own config dataclass (`task=<name>`, keys `task.<key>`; see
`tasks/`). The helpers `positive`, `non_negative`, `fraction` and `one_of` declare what a key
accepts, for the loop's sections and every task's alike; they and the checks of each section are
in `config_checks.py`.

>>> cfg = load_config(["train.steps=10", "train.batch_size=32"])
>>> cfg.train.steps, cfg.train.batch_size
(10, 32)
>>> load_config(["train.batch_size=-4"])
Traceback (most recent call last):
...
{{ cookiecutter.package_name }}.errors.ConfigError: train.batch_size=-4: must be a positive integer
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config_checks import (  # noqa: F401 - OptimizerSettings for task modules
    OPTIMIZERS,
    SCHEDULES,
    OptimizerSettings,
    check_config,
    check_renamed_keys,
    fraction,
    non_negative,
    one_of,
    positive,
)
from .errors import ConfigError
from .support import PRECISIONS, STRATEGIES


@dataclass
class TrainConfig:
    # Total steps; a resumed run trains up to it (raise it to train longer).
    steps: int = positive(3000)
    # Global batch: split evenly over the replicas (per-replica batch = batch_size / replicas).
    batch_size: int = positive(64)
    # Steps run per tf.function call; a call also ends at every log, eval and checkpoint step,
    # so cadences stay exact and calls are at most log_every_steps long. Fewer, longer calls
    # spend less time in Python between steps (`bench` measures it).
    steps_per_execution: int = positive(100)
    # One metrics.jsonl line and TensorBoard point, written between compiled calls.
    # 0 (auto): every 100 steps, or every steps / 10 in a run shorter than 1000 steps, so even a
    # short run draws its curve.
    log_every_steps: int = non_negative(0)
    # Gradient accumulation: a step is this many micro-batches of batch_size / accumulate_steps
    # whose gradients are averaged into one update (a batch that does not fit in memory).
    accumulate_steps: int = positive(1)
    # Clip gradients to this global norm before they are applied (each micro-batch's, with
    # accumulate_steps); 0 turns clipping off.
    clip_norm: float = non_negative(0.0)
    # XLA for the replica step (tf.function(jit_compile=True)); not with distribute.cpu_devices.
    jit_compile: bool = False


@dataclass
class OptimizerConfig:
    name: str = one_of("adam", OPTIMIZERS)  # the optimizer of every variable group
    # The peak rate of a schedule (its constant value with schedule=constant).
    learning_rate: float = positive(2e-3)
    # A separate optimizer (same kind) for the model's head with its own rate; 0 means one
    # optimizer for every variable. The task names the head (`Task.variable_groups`).
    head_learning_rate: float = non_negative(0.0)
    # constant, or warmup_cosine: a linear warmup over warmup_steps, then a cosine decay to
    # min_learning_rate at decay_steps (components/schedules.py), for each optimizer.
    schedule: str = one_of("constant", SCHEDULES)
    # Steps of the linear warmup of warmup_cosine.
    warmup_steps: int = non_negative(0)
    # 0: train.steps. Set it to keep the schedule when a resumed run raises train.steps.
    decay_steps: int = non_negative(0)
    # The rate at the end of the cosine decay.
    min_learning_rate: float = non_negative(0.0)
    # An exponential moving average of the weights (Keras' use_ema), e.g. 0.999: evaluated,
    # kept best and exported instead of the raw weights; 0: off.
    ema_decay: float = fraction(0.0)


@dataclass
class CheckpointConfig:
    # A checkpoint every N steps, at the last step and before a stop by a signal.
    every_steps: int = positive(500)
    # Older checkpoints kept as fallbacks when the newest is damaged.
    max_to_keep: int = positive(3)
    # Start from scratch when run_dir holds checkpoints but none is readable.
    allow_fresh_start: bool = False
    # Keep the best checkpoint by this evaluation value (eval_loss, eval_mae, eval_accuracy...)
    # in checkpoints/best/, apart from the rolling ones; empty: none.
    best_metric: str = ""
    # Whether a lower (a loss, an error) or a higher (an accuracy) best_metric is better.
    best_mode: str = one_of("min", ("min", "max"))
    # Early stopping: end the run after this many evaluations without a better best_metric.
    # 0: never.
    patience: int = non_negative(0)
    # What evaluate and export read: the newest checkpoint, or the best one.
    which: str = one_of("latest", ("latest", "best"))


@dataclass
class EvalConfig:
    # A pass over the held-out split every N steps and at the last step.
    every_steps: int = positive(500)
    # Held-out examples per batch (split over the replicas like train.batch_size). Evaluation
    # keeps no activations for gradients, so it takes larger batches than training, and fewer
    # batches a pass mean fewer calls.
    batch_size: int = positive(512)


@dataclass
class DataConfig:
    # An .npz with x_train, y_train, x_test, y_test (rows are examples) in the task's shapes;
    # empty means the task's own data.
    path: str = ""
    # Sharded TFRecord files read streaming, for data larger than memory: a directory written by
    # `python -m <package>.prepare data.files=<directory>`, or a glob of its shards. Empty: off.
    files: str = ""
    # Training examples held for shuffling by each input pipeline (the memory a run's data
    # takes with data.files, whatever the data set's size).
    shuffle_buffer: int = positive(10_000)
    # Training shards `prepare` writes (held-out as many, at most one per example); 0: one per
    # 64 MiB of training data. A multiple of the worker count lets each worker read only its
    # own files; each file is opened once per epoch, so more shards cost a little more.
    shards: int = non_negative(0)
    # Train on the first N training examples only (0: all), in memory: `debug=overfit` uses it
    # to check that the model can fit a few batches.
    limit_train: int = non_negative(0)


@dataclass
class DistributeConfig:
    # The tf.distribute strategy; chosen with the group, distribute=<strategy>.
    strategy: str = one_of("none", STRATEGIES)
    # distribute=mirrored: 0 uses every local GPU (or the CPU); N splits the CPU into N devices.
    cpu_devices: int = non_negative(0)
    # distribute=tpu: the TPU's name or grpc:// address; empty: the one attached to this VM.
    tpu: str = ""
    # multi_worker_mirrored inside a Slurm job step without TF_CONFIG: the first port of each
    # node's tasks (task i of a node listens on port_base + i).
    port_base: int = positive(8888)
    # multi_worker_mirrored: the seconds a worker waits for every peer to start (a missing peer
    # then ends every worker in one line), and between checks that each peer is still alive (a
    # worker that died ends the others in one line within about this long).
    peer_timeout_seconds: int = positive(60)


@dataclass
class PrecisionConfig:
    # The Keras dtype policy; chosen with the group, precision=<policy>.
    policy: str = one_of("float32", PRECISIONS)


@dataclass
class ThreadsConfig:
    # TensorFlow's thread pools, set when a training process starts (they cannot change once
    # TensorFlow runs). intra_op: threads inside one op; 0 picks by the model: one thread for a
    # step under 1 GFLOP (its ops are too small to gain from being split), else
    # TensorFlow's default (every core). inter_op: ops run side by side; 0 is TensorFlow's
    # default (every core).
    intra_op: int = non_negative(0)
    inter_op: int = non_negative(0)  # ops run side by side; 0: TensorFlow's default


@dataclass
class ProfileConfig:
    # A TensorFlow Profiler trace of the steps after start_step up to stop_step, written to
    # run_dir/tensorboard/plugins/profile (TensorBoard's Profile tab); stop_step 0: off.
    start_step: int = non_negative(0)
    stop_step: int = non_negative(0)  # 0: no trace


@dataclass
class Config:
    # Where everything of a run goes; the same run_dir resumes. runs/<task> becomes one
    # directory per task (runs/regression...): see `validate`.
    run_dir: str = "runs/<task>"
    # Seeds the data, the initial weights and the training noise.
    seed: int = non_negative(42)
    # Op determinism plus fixed seeds: a resumed run is bitwise equal to an uninterrupted one.
    deterministic: bool = False
    # The problem: data, model, loss and metrics (a `tasks/` module; `task=<name>` picks one).
    task: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    # Actions the loop runs at their cadence besides its own (loop/actions.py):
    # actions=[confusion_matrix] picks shipped ones (conf/actions/), or your own:
    # '+actions.mine={_target_: my_module.MyAction, every_steps: 100}'
    actions: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(name="base", node=Config)

AUTO_LOG_EVERY_STEPS = 100


DEFAULT_RUN_DIR = "runs/<task>"


def flat(cfg) -> dict:
    """`{dotted key: value}` of every setting of a config (dataclasses inside dataclasses).

    >>> flat(TrainConfig())["steps"]
    3000
    """
    found = {}

    def walk(prefix, value):
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                walk(f"{prefix}{field.name}.", getattr(value, field.name))
        else:
            found[prefix[:-1]] = value

    walk("", cfg)
    return found


def task_name(target: str) -> str:
    """The `task=` name of a task class path (its module's name).

    >>> task_name("my_project.tasks.regression.RegressionTask")
    'regression'
    """
    return target.rsplit(".", 2)[-2] if target.count(".") >= 1 else target


def validate(cfg: Config) -> Config:
    """Checks the values Hydra's types cannot (`config_checks.py`, a function a section), then
    fills in the automatic ones; raises `ConfigError` naming the first bad key."""
    check_config(cfg)
    if cfg.run_dir == DEFAULT_RUN_DIR:  # one default per task: a new task never collides
        cfg.run_dir = f"runs/{task_name(cfg.task._target_)}"
    if not cfg.train.log_every_steps:
        cfg.train.log_every_steps = max(1, min(AUTO_LOG_EVERY_STEPS, cfg.train.steps // 10))
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


CONF = os.path.join(os.path.dirname(__file__), "conf")


def needed_tasks(overrides) -> list[str]:
    """The tasks whose modules composing `overrides` needs: the command line's `task=<name>`
    (it wins over any preset), else the tasks the selected presets name, else the packaged
    default.

    >>> needed_tasks(["experiment=digits_long", "task=sequence"])
    ['sequence']
    """
    for override in reversed(list(overrides)):
        key, _, value = override.lstrip("+~").partition("=")
        if key == "task" and value:
            return [value]
    if presets := preset_tasks(overrides):
        return presets
    defaults = OmegaConf.to_container(OmegaConf.load(os.path.join(CONF, "config.yaml")))["defaults"]
    return [next(d["task"] for d in defaults if isinstance(d, dict) and "task" in d)]


def preset_tasks(overrides) -> list[str]:
    """The tasks named by the presets a command line selects: `experiment=digits_long` reads
    `conf/experiment/digits_long.yaml`, whose `override /task: image_classification` makes
    that task the run's unless the command line names one (`task=<name>` wins in Hydra).

    >>> preset_tasks(["experiment=digits_long", "train.steps=5"])
    ['image_classification']
    """
    names = []
    for override in overrides:
        group, _, value = override.lstrip("+~").partition("=")
        if group == "task" or not os.path.isdir(os.path.join(CONF, group)):
            continue
        for option in (name.strip() for name in value.strip("[]").split(",")):  # [a,b]: both
            path = os.path.join(CONF, group, f"{option}.yaml")
            if not os.path.isfile(path):
                continue  # Hydra lists the options when it composes
            try:
                preset = OmegaConf.to_container(OmegaConf.load(path))
            except Exception as error:  # yaml's own errors (Hydra's compose shows a traceback)
                problem = " ".join(str(error).split())
                raise ConfigError(f"{group}={option}: {path}: not YAML: {problem}") from None
            defaults = preset.get("defaults") if isinstance(preset, dict) else None
            names += [
                name
                for entry in (defaults if isinstance(defaults, list) else [])
                if isinstance(entry, dict)
                for key, name in entry.items()
                if key.split()[-1].strip("/") == "task"  # `override /task`, `/task`, `task`
            ]
    return names


def load_config(overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Composes the packaged config with `key=value` overrides and checks it.

    Only the task modules the run can select are imported (`task=<name>`: `tasks/<name>.py`;
    without it, the task a selected preset names, else the packaged default's), so a task
    module that imports TensorFlow at the top costs nothing until it is selected. A name with
    no module of its own (a task registered elsewhere, a typo) imports every task module before
    Hydra lists the choices.
    """
    from .tasks.base import import_task_module, shipped_tasks

    check_renamed_keys(overrides)
    if not all([import_task_module(name) for name in needed_tasks(overrides)]):
        shipped_tasks()  # each one an option of the `task` group
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=f"{__package__}.conf", version_base=None):
            composed = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        message = _one_line(error)
        if "LexerNoViableAltException" in message or "Ambiguous value" in message:
            message += (
                "; a value with spaces, commas, '~' or non-ASCII letters must be quoted, "
                "e.g. \"run_dir='runs/my run'\" (to sweep over a comma list, add -m)"
            )
        raise ConfigError(f"bad configuration: {message}") from None
    return config_from(composed)


def config_from(composed) -> Config:
    """The checked `Config` of a composed Hydra config (compose API or `@hydra.main`)."""
    try:
        cfg = OmegaConf.to_object(composed)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"bad configuration: {_one_line(error)}") from None
    return validate(cfg)


def saved_run_config(cfg: Config) -> Config:
    """The config a finished run used (its run.json), with `run_dir`, `distribute` and
    `checkpoint.which` from `cfg`.

    `evaluate` and `export` rebuild the exact model of a run this way, on any strategy.
    """
    from .tasks.base import task_class

    path = os.path.join(cfg.run_dir, "run.json")
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)["config"]
        target = saved["task"]["_target_"]
    except FileNotFoundError:
        raise ConfigError(
            f"run_dir={cfg.run_dir}: no run.json there; train into it first"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a run.json written by training") from None
    saved["run_dir"] = cfg.run_dir
    saved["distribute"] = dataclasses.asdict(cfg.distribute)
    saved.setdefault("checkpoint", {})["which"] = cfg.checkpoint.which
    try:
        schema = OmegaConf.structured(Config)
        schema.task = OmegaConf.structured(task_class(target).config_class)
        return validate(OmegaConf.to_object(OmegaConf.merge(schema, saved)))
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"{path}: {_one_line(error)}") from None


def to_dict(cfg: Config) -> dict:
    """The resolved configuration as plain data (for run.json and comparisons)."""
    return dataclasses.asdict(cfg)
