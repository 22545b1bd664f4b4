"""Export a run's newest (or best) checkpoint for reuse and for serving.

    python -m {{ cookiecutter.package_name }}.export run_dir=runs/a
    python -m {{ cookiecutter.package_name }}.export run_dir=runs/a checkpoint.which=best

writes `run_dir/export/`:

* `model.keras`: reloads wherever the package is installed, once it is imported (its custom
  objects register with Keras): `import {{ cookiecutter.package_name }}`, then
  `keras.models.load_model("runs/a/export/model.keras")`.
* `saved_model/`: a TensorFlow SavedModel whose `serving_default` signature returns what the
  task serves (`Task.serve`: `predictions` for the regression, `probabilities` and `class_ids`
  for the classifier), for TF Serving, TFLite converters, or `tf.saved_model.load` in a process
  that never imports this package. Inspect it with
  `saved_model_cli show --dir runs/a/export/saved_model --all`.
* `run.json`: the run that produced them.

All or nothing: the three are written into a staging directory beside `export/`, which then
takes its place; an interrupted export leaves the previous one whole (model, SavedModel and
run.json of one step).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from .cli import run
from .config import Config
from .errors import RunError
from .storage import storage_cause


def export(cfg: Config) -> str:
    """Writes the model of the newest checkpoint; returns the export directory."""
    import keras
    import tensorflow as tf

    from .evaluate import restore_run

    cfg, _, trainer, source, step = restore_run(cfg)
    export_dir = os.path.join(cfg.run_dir, "export")
    # All or nothing: the three parts are written side by side into a staging directory, which
    # then takes the place of the previous export.
    staging = None
    try:
        _recover(cfg.run_dir, export_dir)
        staging = tempfile.mkdtemp(prefix=f"{STAGING}-", dir=cfg.run_dir)
        keras_path = os.path.join(staging, "model.keras")
        trainer.model.save(keras_path)
        # One endpoint, the task's outputs for a batch shaped like the training inputs.
        archive = keras.export.ExportArchive()
        archive.track(trainer.model)
        # Named inputs are served under their names, one input as `inputs`.
        x = source.example_inputs
        named = x if isinstance(x, dict) else {"inputs": x}
        specs = {
            name: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype), name)
            for name, a in named.items()
        }
        archive.add_endpoint(
            "serve",
            lambda inputs: trainer.task.serve(trainer.model, inputs),
            input_signature=[specs if isinstance(x, dict) else specs["inputs"]],
        )
        archive.write_out(os.path.join(staging, "saved_model"), verbose=False)
        shutil.copyfile(os.path.join(cfg.run_dir, "run.json"), os.path.join(staging, "run.json"))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0o700 would hide it from the group
        _swap_in(staging, export_dir)
    except (OSError, tf.errors.OpError) as error:  # no space, read-only, a file in the way...
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        where = staging or cfg.run_dir
        raise RunError(
            f"could not export to {export_dir} ({storage_cause(error, where)}); the previous "
            "export, if any, is unchanged"
        ) from None
    except BaseException:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    keras_path = os.path.join(export_dir, "model.keras")
    saved_model_dir = os.path.join(export_dir, "saved_model")
    print(f"exported step {step} ({cfg.checkpoint.which}) to {keras_path} and {saved_model_dir}")
    return export_dir


STAGING, PREVIOUS = ".export-staging", ".export-previous"


def _swap_in(staging: str, export_dir: str) -> None:
    """Puts `staging` in the place of `export_dir`: the previous export is renamed aside, the
    new one renamed in, then the previous one deleted. A kill between the two renames leaves the
    previous export whole under `.export-previous`, which the next export puts back first."""
    previous = os.path.join(os.path.dirname(export_dir), PREVIOUS)
    if os.path.lexists(export_dir) and not os.path.isdir(export_dir):
        raise RunError(f"{export_dir}: is a file, not an export directory; move it away")
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.lexists(export_dir):
        os.rename(export_dir, previous)
    os.rename(staging, export_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _recover(run_dir: str, export_dir: str) -> None:
    """Removes what an interrupted export left: staging directories, and a previous export set
    aside (put back when no export took its place)."""
    for name in os.listdir(run_dir):
        if name.startswith(f"{STAGING}-"):
            shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
    previous = os.path.join(run_dir, PREVIOUS)
    if os.path.isdir(previous):
        if os.path.lexists(export_dir):
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.rename(previous, export_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: list[str] | None = None) -> int:
    return run(f"{__package__}.export", export, argv, keys=("run_dir", "checkpoint.which"))


if __name__ == "__main__":
    raise SystemExit(main())
