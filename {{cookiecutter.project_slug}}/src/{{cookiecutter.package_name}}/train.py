"""Train a task's model: `python -m {{ cookiecutter.package_name }}.train [key=value ...]`.

Running the same command again with the same `run_dir` resumes from the newest checkpoint and
continues up to `train.steps`. Examples:

    python -m {{ cookiecutter.package_name }}.train run_dir=runs/a train.steps=600
    python -m {{ cookiecutter.package_name }}.train run_dir=runs/b distribute=mirrored distribute.cpu_devices=2
    python -m {{ cookiecutter.package_name }}.train run_dir=runs/c precision=mixed_bfloat16
    python -m {{ cookiecutter.package_name }}.train run_dir=runs/d task=image_classification
"""

from __future__ import annotations

import json
import sys

from .cli import run
from .config import Config
from .errors import EXIT_SIGINT, Interrupted


def train(cfg: Config) -> dict:
    """Trains and evaluates `cfg`; returns the final metrics (also in run_dir)."""
    from .loop.controller import train_and_evaluate
    from .plot import plot_curves

    result = train_and_evaluate(cfg)
    try:
        if result.get("chief") and result.get("loss") is not None:
            plot_curves(cfg.run_dir)
        print(
            json.dumps(
                {key: round(v, 6) if isinstance(v, float) else v for key, v in result.items()}
            )
        )
        print(f"run directory: {cfg.run_dir}", file=sys.stderr)
    except (KeyboardInterrupt, Interrupted) as stop:  # a signal after training ended
        code = getattr(stop, "exit_code", EXIT_SIGINT)
        saved = (
            f"after training ended at step {result['step']}: its checkpoints and "
            f"final_metrics.json are saved in {cfg.run_dir} (the curves: python -m "
            f"{__package__}.plot run_dir={cfg.run_dir})"
        )
        raise Interrupted(code, saved) from None
    return result


def main(argv: list[str] | None = None) -> int:
    return run(f"{__package__}.train", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
