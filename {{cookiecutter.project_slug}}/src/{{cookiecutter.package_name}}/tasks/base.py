"""The task interface: the one place that knows a problem; the loop only calls it.

A task owns what is read (its train and held-out arrays), what is learned (the model, the
per-example loss, the named metrics), what the exported model serves, and which of its config
keys make a run directory's checkpoints unusable. The loop, `evaluate`, `export`, `plot` and
`bench` import no task, model, loss or metric: a new problem is one module in `tasks/`, nothing
else changes (the shared tests pick it up by themselves).

A task module holds a config dataclass and a `Task` subclass named after the module:

    @dataclass
    class DigitsConfig(TaskConfig):
        filters: int = positive(16)          # `task.filters=32` on the command line

    class DigitsTask(Task, name="digits"):   # tasks/digits.py; `task=digits` on the command line
        config_class = DigitsConfig
        identity_keys = ("filters",)
        def make_arrays(self): ...           # required
        def build_model(self): ...           # required
        def build_loss(self, reduction="sum_over_batch_size"): ...   # required
        def build_metrics(self): ...         # optional

What a task must provide, and what it may:

- required: `make_arrays`, `build_model`, `build_loss` (or, for a step of the task's own,
  `build_models` and `train_step`);
- optional: `build_metrics`, `loss_weights`, `check_arrays`, `variable_groups` (only for
  `optimizer.head_learning_rate`), `serve`, `identity_keys`, and for the shared tests
  `small_overrides` (a run in seconds) and `noise_free_overrides` (no training-time noise);
- a step of its own (docs/custom-step.md): `train_step(batch, loop)` and `eval_step(batch,
  loop)`, with several models (`build_models`) and optimizers (`optimizer_variables`, each set
  by `task.optimizers.<name>.*`), what `export` serves (`serving_model`), and pictures drawn at
  each evaluation (`figures`). `tasks/gan.py` is one.

Inputs, targets and predictions may be single arrays or dicts of named arrays (several inputs
or outputs). With dict outputs, `build_loss` returns a dict of losses, one per output, and
`loss_weights` their weights (Keras' convention); `build_metrics` may return a dict of metric
lists per output: the loop logs `<output>_loss` and `<output>_<metric>` for each.

Import Keras where you like. The command-line check imports only the selected task's module
(`task=<name>` imports `tasks/<name>.py`), so a module that imports Keras at the top pays for
TensorFlow's import only when it is selected; the shipped tasks import Keras inside
their methods, so a bad command line for them is refused at once. Keras classes a task module
defines (its model, layers) are registered with Keras by `import <package>`, so a `.keras`
export reloads with no registry edit.

Every method sees one replica's view (as in the Model Garden's `base_task.py`): shapes are per
example, the loop handles batching, strategies, precision and loss averaging.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from ..config_checks import OptimizerSettings
from ..data import Arrays, ArraySource, leaves, load_npz, map_arrays, num_rows
from ..errors import ConfigError, RunError

SPLITS = ("train", "test")


@dataclass
class TaskConfig:
    """Base of every task's config section (`cfg.task`)."""

    # The Task class this section configures, filled in when the task registers.
    _target_: str = ""
    # Settings of the task's optimizers by name (`Task.optimizer_variables`), over `optimizer.*`:
    # `task.optimizers.<name>.learning_rate=1e-4`. A task lists its names here with defaults.
    optimizers: dict[str, OptimizerSettings] = field(default_factory=dict)


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
    # For the shared tests, which run every guarantee of the loop on every task: overrides that
    # make a run take seconds (less data, a narrower model), and overrides that switch off the
    # model's training-time randomness (noise, dropout) so that a compiled step can be compared
    # with an eager reference of the same forward pass.
    small_overrides: ClassVar[tuple[str, ...]] = ()
    noise_free_overrides: ClassVar[tuple[str, ...]] = ()

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
        arrays = self.arrays(data.path)
        if data.limit_train:  # debug=overfit: the first examples only
            first = slice(0, data.limit_train)
            arrays = arrays._replace(
                x_train=map_arrays(lambda a: a[first], arrays.x_train),
                y_train=map_arrays(lambda a: a[first], arrays.y_train),
            )
        return ArraySource(arrays, self.data_name(data.path))

    def arrays(self, path: str = "") -> Arrays:
        """The checked train and held-out arrays: from the `.npz` at `path` (`data.path`), else the
        task's own data."""
        arrays = load_npz(path) if path else self.make_arrays()
        source = self.data_name(path)
        for split in SPLITS:
            x, y = getattr(arrays, f"x_{split}"), getattr(arrays, f"y_{split}")
            rows = {
                name: len(array)
                for name, array in leaves(x, f"x_{split}") + leaves(y, f"y_{split}")
            }
            first = next(iter(rows))
            for name, count in rows.items():
                if count != rows[first]:
                    raise RunError(
                        f"{source}: {first} has {rows[first]} rows but {name} has {count}; "
                        "they must pair one target with each example"
                    )
            if not num_rows(x):
                raise RunError(f"{source}: x_{split} is empty; every split needs examples")
        train = dict(leaves(arrays.x_train, "x") + leaves(arrays.y_train, "y"))
        test = dict(leaves(arrays.x_test, "x") + leaves(arrays.y_test, "y"))
        if train.keys() != test.keys():
            raise RunError(
                f"{source}: the train split has arrays {sorted(train)} but the test split "
                f"{sorted(test)}; both splits must have the same arrays"
            )
        for name, array in train.items():  # `x`, `y`, or `x.<name>`...
            if array.shape[1:] != test[name].shape[1:]:
                train_name, test_name = (f"{name[0]}_{split}{name[1:]}" for split in SPLITS)
                raise RunError(
                    f"{source}: {train_name} examples have shape {array.shape[1:]} but "
                    f"{test_name} examples {test[name].shape[1:]}; both splits must have "
                    "the same shape"
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
        """The `keras.losses.Loss` of `(targets, predictions)`, or with named outputs a dict of
        them, one per output; the loop asks for `reduction=None` (one loss per example) and
        averages over the global batch itself."""
        raise NotImplementedError(f"{type(self).__name__}.build_loss")

    def loss_weights(self) -> dict[str, float]:
        """With named outputs, the weight of each output's loss in the objective (1 if absent)."""
        return {}

    def build_metrics(self) -> list | dict:
        """Fresh `keras.metrics.Metric`s of `(targets, predictions)`, each with its own name; with
        named outputs, a dict `{output: [metrics of (targets[output], predictions[output])]}`.

        The loop makes one set for training and one for evaluation: metrics.jsonl and TensorBoard
        get `<name>` and `eval_<name>` (`<output>_<name>` per output), the progress bar and the
        plot follow the names.
        """
        return []

    def variable_groups(self, model) -> dict[str, list]:
        """`{"body": [...], "head": [...]}` for `optimizer.head_learning_rate` (two optimizers)."""
        raise RunError(
            f"optimizer.head_learning_rate: task={self.name} does not say which variables are its "
            f"head (no {type(self).__name__}.variable_groups); leave it at 0"
        )

    # -- several models and optimizers ----------------------------------------------------------
    def build_models(self) -> dict:
        """The task's fresh models by name; the loop builds them under the strategy's scope.

        Default: `{"model": self.build_model()}`, which the loop builds by calling it on a real
        batch. A task with several models (a GAN's generator and discriminator) returns each
        one built, every weight created (`keras.Input`, or `model.build(shape)`): the loop
        builds the optimizers on them before the first step.
        """
        return {"model": self.build_model()}

    def optimizer_variables(self, models: dict) -> dict[str, list]:
        """The variables each optimizer updates, by optimizer name (one optimizer per name).

        Default: one optimizer, `all`, for every trainable variable. Each name's settings are
        `optimizer.*`, overridden by `task.optimizers.<name>.*` (its rate, schedule, betas).
        """
        return {"all": [v for model in models.values() for v in model.trainable_variables]}

    # -- the step --------------------------------------------------------------------------------
    def train_step(self, batch, loop) -> dict:
        """One replica's training step on its share of a batch; returns the values to log.

        `loop` (`loop/step.py`) holds the models and optimizers by name, the task's metrics, and
        what a step must get right under a strategy and a precision policy: a mean over the
        GLOBAL batch (`loop.compute_average_loss`), the models' own losses scaled for the
        replicas (`loop.scale_regularization_loss`), and `loop.apply_gradients` (loss scaling,
        clipping by the global norm, the logged gradient norm, accumulation). Each returned
        value (per example, or one per replica) is logged as its mean since the last log.

        This is the reference step of a custom training loop; write your own in your task to
        train something `fit` cannot (docs/custom-step.md).
        """
        import tensorflow as tf

        # exercise begin: train_step
        # Exercise `train_step` (the step of a custom training loop): under a `tf.GradientTape`,
        # run `loop.models["model"]` with `training=True`; take the per-example losses
        # `loop.loss(targets, predictions)` and the model's own `loop.model_losses(model)`; the
        # loss to differentiate is the mean over the GLOBAL batch (`loop.compute_average_loss`)
        # plus the model's own through `loop.scale_regularization_loss` (replicas must not count
        # them twice); `loop.apply_gradients(tape, loss)` scales, clips and updates; update each
        # metric of `loop.metrics` with `(targets, predictions)`; return
        # `{"loss": per_example + own}` (each example's loss, unscaled).
        inputs, targets = batch
        model = loop.models["model"]
        with tf.GradientTape() as tape:
            predictions = model(inputs, training=True)
            per_example = loop.loss(targets, predictions)  # float32, one per example
            own = loop.model_losses(model)  # the model's add_loss terms, float32
            loss = loop.compute_average_loss(per_example) + loop.scale_regularization_loss(own)
        loop.apply_gradients(tape, loss)
        for metric in loop.metrics:
            metric.update_state(targets, predictions)
        return {"loss": per_example + own}
        # exercise end

    def eval_step(self, batch, loop) -> dict:
        """One replica's evaluation of its share of a held-out batch; returns the values to log
        (as `eval_<name>`, averaged over the held-out split), and updates `loop.metrics`."""
        from ..loop.outputs import as_float32

        inputs, targets = batch
        outputs = as_float32(loop.models["model"](inputs, training=False))
        for metric in loop.metrics:
            metric.update_state(targets, outputs)
        return {"loss": loop.loss(targets, outputs)}

    # -- what is served --------------------------------------------------------------------------
    def serving_model(self, models: dict):
        """The model `export` writes and serves (for a GAN, the generator)."""
        return models["model"]

    def serve(self, model, inputs) -> dict:
        """The exported SavedModel's outputs for a batch of `inputs`: a dict of named tensors
        (the model's own names when it has named outputs, else `predictions`)."""
        outputs = model(inputs, training=False)
        return dict(outputs) if isinstance(outputs, dict) else {"predictions": outputs}

    def figures(self, models: dict, source, step: int) -> dict:
        """The task's own pictures of its models at `step` (a GAN's samples): a dict of
        matplotlib `Figure`s by name, drawn at each evaluation into TensorBoard and
        `run_dir/<name>.png`. Optional."""
        return {}

    @classmethod
    def has_figures(cls) -> bool:
        return cls.figures is not Task.figures

    @classmethod
    def has_own_step(cls) -> bool:
        """Whether the task writes its own training step."""
        return cls.train_step is not Task.train_step


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
    """The task a run's config selects, configured by `cfg.task` and seeded by `cfg.seed`; the
    Keras classes of its module are registered (its `.keras` export reloads)."""
    cls = task_class(cfg.task._target_)
    register_keras_classes(sys.modules[cls.__module__])
    return cls(cfg.task, cfg.seed)


def task_modules() -> list[str]:
    """The names of this package's task modules (`tasks/<name>.py`), without importing them."""
    package = importlib.import_module(__package__)
    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__) if info.name != "base"
    )


def import_task_module(name: str) -> bool:
    """Imports `tasks/<name>.py` if there is one (its task becomes an option of `task`)."""
    if name not in task_modules():
        return False
    importlib.import_module(f"{__package__}.{name}")
    return True


def defined_tasks(module) -> list[type[Task]]:
    """The named Task subclasses `module` defines."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Task)
        and value.__module__ == module.__name__
        and value.name
    ]


def shipped_tasks() -> list[str]:
    """Imports every task module of this package, so each task is an option of the `task`
    group; returns the names of the tasks they define (tasks defined elsewhere register too,
    when their module is imported, but are not listed)."""
    names = []
    for name in task_modules():
        module = importlib.import_module(f"{__package__}.{name}")
        names += [task.name for task in defined_tasks(module)]
    return sorted(names)


def register_keras_classes(module) -> None:
    """Registers with Keras, under this package's name, every Keras class `module` defines
    (a model or layer written in a task module without `register_keras_serializable`), so its
    `.keras` export reloads once the package is imported. Registered classes keep their name."""
    if "keras" not in sys.modules:
        return  # registered when Keras is imported (the package's import hook)
    import keras

    kinds = (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric)
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and issubclass(value, kinds)
            and value.__module__ == module.__name__
            and keras.saving.get_registered_name(value) == value.__name__  # not registered
        ):
            # the package's own name, as components/_registry.py (importing it would import Keras)
            keras.saving.register_keras_serializable(package=__name__.split(".")[0])(value)


def register_all_task_classes() -> None:
    """Imports every task module and registers the Keras classes each defines."""
    shipped_tasks()
    for name in task_modules():
        register_keras_classes(sys.modules[f"{__package__}.{name}"])
