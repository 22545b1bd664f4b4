"""Draw a run's training curves: `python -m {{ cookiecutter.package_name }}.plot run_dir=runs/a`.

Writes `run_dir/curves.png` (loss, the custom metric, the held-out loss and the learning rate
against step) from `metrics.jsonl`. Training draws it at the end too; TensorBoard stays the
live view (`tensorboard --logdir runs`).
"""

from __future__ import annotations

import os

from .cli import run
from .config import Config
from .errors import RunError

PANELS = (
    ("loss", "training loss"),
    ("mae", "training MAE (custom metric)"),
    ("eval_loss", "held-out loss"),
    ("learning_rate", "learning rate"),
)


def plot_curves(run_dir: str) -> str:
    """Draws the curves of `run_dir/metrics.jsonl` into `run_dir/curves.png`; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    from .loop.logs import read_metrics

    try:
        records = read_metrics(run_dir)
    except FileNotFoundError:
        raise RunError(f"run_dir={run_dir}: no metrics.jsonl there; train into it first") from None
    figure, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for axis, (key, title) in zip(axes.flat, PANELS):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if points:
            axis.plot(*zip(*points), marker="." if len(points) < 30 else None)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if key.endswith("loss") and points and min(p[1] for p in points) > 0:
            axis.set_yscale("log")
    path = os.path.join(run_dir, "curves.png")
    tmp = os.path.join(run_dir, "curves.tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    def plot(cfg: Config) -> str:
        path = plot_curves(cfg.run_dir)
        print(f"wrote {path}")
        return path

    return run(f"{__package__}.plot", plot, argv)


if __name__ == "__main__":
    raise SystemExit(main())
