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
"""

from __future__ import annotations

import os
import shutil

from .cli import run
from .config import Config


def export(cfg: Config) -> str:
    """Writes the model of the newest checkpoint; returns the export directory."""
    import keras
    import tensorflow as tf

    from .evaluate import restore_run

    cfg, _, trainer, source, step = restore_run(cfg)
    export_dir = os.path.join(cfg.run_dir, "export")
    os.makedirs(export_dir, exist_ok=True)
    keras_path = os.path.join(export_dir, "model.keras")
    tmp_path = os.path.join(export_dir, "model.tmp.keras")
    trainer.model.save(tmp_path)  # a failed save never replaces a good export
    os.replace(tmp_path, keras_path)
    saved_model_dir = os.path.join(export_dir, "saved_model")
    tmp_dir = os.path.join(export_dir, "saved_model.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
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
    archive.write_out(tmp_dir, verbose=False)
    shutil.rmtree(saved_model_dir, ignore_errors=True)
    os.replace(tmp_dir, saved_model_dir)
    shutil.copyfile(os.path.join(cfg.run_dir, "run.json"), os.path.join(export_dir, "run.json"))
    print(f"exported step {step} ({cfg.checkpoint.which}) to {keras_path} and {saved_model_dir}")
    return export_dir


def main(argv: list[str] | None = None) -> int:
    return run(f"{__package__}.export", export, argv)


if __name__ == "__main__":
    raise SystemExit(main())
