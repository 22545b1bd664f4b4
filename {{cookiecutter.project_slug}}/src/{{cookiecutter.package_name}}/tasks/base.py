"""The task interface: the one place that knows a problem; the loop only calls it.

A task owns what is read (its train and held-out arrays), what is learned (the model, the
per-example loss, the named metrics), what the exported model serves, and which of its config
keys make a run directory's checkpoints unusable. The loop, `evaluate`, `export`, `plot` and
`bench` import no task, model, loss or metric: a new problem is one module in `tasks/`, nothing
else changes.

A task module holds a config dataclass and a `Task` subclass that names itself:

    @dataclass
    class DigitsConfig(TaskConfig):
        filters: int = positive(16)          # `task.filters=32` on the command line

    class DigitsTask(Task, name="digits"):   # `task=digits` on the command line
        config_class = DigitsConfig
        identity_keys = ("filters",)
        def make_arrays(self): ...
        def build_model(self): ...
        def build_loss(self, reduction="sum_over_batch_size"): ...
        def build_metrics(self): ...

Naming the subclass registers its config as an option of Hydra's `task` group. Import Keras
inside the methods, not at the top of the module: the config check imports every task module
and must not pay the ~3 s of importing TensorFlow (a bad command line is refused at once).

Every method sees one replica's view (as in the Model Garden's `base_task.py`): shapes are per
example, the loop handles batching, strategies, precision and loss averaging.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from ..config import ConfigError
from ..data import Arrays, ArraySource, load_npz
from ..errors import RunError


@dataclass
class TaskConfig:
    """Base of every task's config section (`cfg.task`)."""

    # The Task class this section configures, filled in when the task registers.
    _target_: str = ""


class Task:
    """One problem the loop can train: subclass it, set `config_class`, fill in the methods.

    Args:
        config: The task's config section (an instance of `config_class`).
        seed: The run's seed (`cfg.seed`); make data and initial weights reproducible from it.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = TaskConfig
    # Keys of `config_class` whose change makes a run directory's checkpoints unusable
    # (the model's shapes, or what its inputs mean).
    identity_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is None:
            return
        cls.name = name
        node = OmegaConf.structured(cls.config_class)
        node._target_ = f"{cls.__module__}.{cls.__qualname__}"
        ConfigStore.instance().store(group="task", name=name, node=node)

    def __init__(self, config, seed: int):
        self.config, self.seed = config, seed

    # -- what is read ----------------------------------------------------------------------------
    def source(self, data):
        """Where a run's batches come from (`cfg.data`): the shards of `data.files`, streamed,
        or the arrays of `data.path` (or the task's own data) in memory."""
        if data.files and data.path:
            raise RunError(
                f"data.path={data.path} with data.files={data.files}: give one source, an "
                "in-memory .npz or sharded files (prepare writes shards from an .npz)"
            )
        if data.files:
            from ..shards import ShardSource

            return ShardSource(data.files, self, data.shuffle_buffer)
        return ArraySource(self.arrays(data.path), self.data_name(data.path))

    def arrays(self, path: str = "") -> Arrays:
        """The checked train and held-out arrays: from the `.npz` at `path` (`data.path`), else the
        task's own data."""
        arrays = load_npz(path) if path else self.make_arrays()
        source = self.data_name(path)
        for split in ("train", "test"):
            x, y = getattr(arrays, f"x_{split}"), getattr(arrays, f"y_{split}")
            if len(x) != len(y):
                raise RunError(
                    f"{source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                    "they must pair one target with each example"
                )
            if not len(x):
                raise RunError(f"{source}: x_{split} is empty; every split needs examples")
        if arrays.x_train.shape[1:] != arrays.x_test.shape[1:]:
            raise RunError(
                f"{source}: x_train examples have shape {arrays.x_train.shape[1:]} but x_test "
                f"examples {arrays.x_test.shape[1:]}; both splits must have the same shape"
            )
        return self.check_arrays(arrays, source)

    def data_name(self, path: str = "") -> str:
        """How errors name the arrays: `data.path=<path>`, or `task=<name>` for its own data."""
        return f"data.path={path}" if path else f"task={self.name}"

    def make_arrays(self) -> Arrays:
        """The task's own data (made in code, or read from an installed package)."""
        raise NotImplementedError(f"{type(self).__name__}.make_arrays")

    def check_arrays(self, arrays: Arrays, source: str) -> Arrays:
        """Casts the arrays to what the model and loss take and checks them; raises `RunError`
        (one line starting with `source`) for data the task cannot train on."""
        return arrays

    # -- what is learned -------------------------------------------------------------------------
    def build_model(self):
        """A fresh, unbuilt `keras.Model` (the loop builds it on a real batch)."""
        raise NotImplementedError(f"{type(self).__name__}.build_model")

    def build_loss(self, reduction="sum_over_batch_size"):
        """The `keras.losses.Loss` of `(targets, predictions)`; the loop asks for
        `reduction=None` (one loss per example) and averages over the global batch itself."""
        raise NotImplementedError(f"{type(self).__name__}.build_loss")

    def build_metrics(self) -> list:
        """Fresh `keras.metrics.Metric`s of `(targets, predictions)`, each with its own name.

        The loop makes one set for training and one for evaluation: metrics.jsonl and TensorBoard
        get `<name>` and `eval_<name>`, the progress bar and the plot follow the names.
        """
        return []

    def variable_groups(self, model) -> dict[str, list]:
        """`{"body": [...], "head": [...]}` for `optimizer.head_learning_rate` (two optimizers)."""
        raise RunError(
            f"optimizer.head_learning_rate: task={self.name} does not say which variables are its "
            f"head (no {type(self).__name__}.variable_groups); leave it at 0"
        )

    # -- what is served --------------------------------------------------------------------------
    def serve(self, model, inputs) -> dict:
        """The exported SavedModel's outputs for a batch of `inputs`: a dict of named tensors."""
        return {"predictions": model(inputs, training=False)}


def task_class(target: str) -> type[Task]:
    """The Task class at the dotted path `target` (a config's `task._target_`)."""
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"task._target_={target}: no such task class") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task._target_={target}: not a Task subclass")
    return cls


def make_task(cfg) -> Task:
    """The task a run's config selects, configured by `cfg.task` and seeded by `cfg.seed`."""
    return task_class(cfg.task._target_)(cfg.task, cfg.seed)


def shipped_tasks() -> list[str]:
    """Imports every module of this package, so each task is an option of the `task` group;
    returns the names of the tasks they define (tasks defined elsewhere register too, when
    their module is imported, but are not listed)."""
    package = importlib.import_module(__package__)
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{__package__}.{info.name}")
        names += [
            value.name
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Task)
            and value.__module__ == module.__name__
            and value.name
        ]
    return sorted(names)
