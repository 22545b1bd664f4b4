"""Export a run's newest checkpoint as `run_dir/export/model.keras` (with its run.json).

    python -m {{ cookiecutter.package_name }}.export run_dir=runs/a

The `.keras` file reloads anywhere the package is installed (its custom objects are registered):
`keras.models.load_model("runs/a/export/model.keras")`.
"""

from __future__ import annotations

import os
import shutil

from .cli import run
from .config import Config


def export(cfg: Config) -> str:
    """Writes the model of the newest checkpoint; returns the export directory."""
    from .evaluate import restore_run

    cfg, _, trainer, _, step = restore_run(cfg)
    export_dir = os.path.join(cfg.run_dir, "export")
    os.makedirs(export_dir, exist_ok=True)
    keras_path = os.path.join(export_dir, "model.keras")
    tmp_path = os.path.join(export_dir, "model.tmp.keras")
    trainer.model.save(tmp_path)  # a failed save never replaces a good export
    os.replace(tmp_path, keras_path)
    shutil.copyfile(os.path.join(cfg.run_dir, "run.json"), os.path.join(export_dir, "run.json"))
    print(f"exported step {step} to {keras_path}")
    return export_dir


def main(argv: list[str] | None = None) -> int:
    return run(f"{__package__}.export", export, argv)


if __name__ == "__main__":
    raise SystemExit(main())
