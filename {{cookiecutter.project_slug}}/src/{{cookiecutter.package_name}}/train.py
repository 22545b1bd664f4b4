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
import os
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
        if result.get("chief") and os.path.exists(os.path.join(cfg.run_dir, "metrics.jsonl")):
            plot_curves(cfg.run_dir)
        print(
            json.dumps(
                {key: round(v, 6) if isinstance(v, float) else v for key, v in result.items()}
            )
        )
        if result.get("chief"):
            print(summary(cfg, result), file=sys.stderr)
    except (KeyboardInterrupt, Interrupted) as stop:  # a signal after training ended
        code = getattr(stop, "exit_code", EXIT_SIGINT)
        saved = (
            f"after training ended at step {result['step']}: its checkpoints and "
            f"final_metrics.json are saved in {cfg.run_dir} (the curves: python -m "
            f"{__package__}.plot run_dir={cfg.run_dir})"
        )
        raise Interrupted(code, saved) from None
    return result


# What a person reads at the end (stderr); the machine-readable result is the JSON line on
# stdout and `final_metrics.json`.
INTERNAL = ("step", "tracing_count", "weights_sha256", "chief", "learning_rate", "steps_per_sec")


def summary(cfg: Config, result: dict) -> str:
    """A few lines for a person: how far the run got, its held-out and training figures, where
    it lives and what to run next.

    >>> print(summary(Config(run_dir="runs/a"), {"step": 30, "loss": 0.5, "eval_loss": 0.25,
    ...     "steps_per_sec": 100.0, "chief": True}))  # doctest: +NORMALIZE_WHITESPACE
    trained to step 30 (100 steps/s): eval_loss 0.25 | loss 0.5
    the run lives in runs/a (metrics.jsonl, curves.png, checkpoints/, tensorboard/)
    next: python -m ....evaluate run_dir=runs/a
          python -m ....export run_dir=runs/a
          tensorboard --logdir runs/a
    """
    figures = {key: value for key, value in result.items() if key not in INTERNAL}
    held_out = [key for key in figures if key.startswith("eval_")]
    shown = [*held_out, *(key for key in figures if key not in held_out)]
    values = " | ".join(
        f"{key} {figures[key]:.4g}" if isinstance(figures[key], float) else f"{key} {figures[key]}"
        for key in shown
    )
    rate = result.get("steps_per_sec")
    speed = f" ({rate:.0f} steps/s)" if isinstance(rate, float) else ""
    command = f"python -m {__package__}"
    return "\n".join(
        [
            f"trained to step {result.get('step')}{speed}: {values}",
            f"the run lives in {cfg.run_dir} (metrics.jsonl, curves.png, checkpoints/, "
            "tensorboard/)",
            f"next: {command}.evaluate run_dir={cfg.run_dir}",
            f"      {command}.export run_dir={cfg.run_dir}",
            f"      tensorboard --logdir {cfg.run_dir}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return run(f"{__package__}.train", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
