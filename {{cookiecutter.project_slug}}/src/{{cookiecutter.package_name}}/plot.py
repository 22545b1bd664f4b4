"""Draw a run's training curves: `python -m {{ cookiecutter.package_name }}.plot run_dir=runs/a`.

Writes `run_dir/curves.png` from `metrics.jsonl`: one panel per logged quantity, whatever the
task logs (`loss`, each metric, the model's own metrics, `grad_norm`, `learning_rate` when it
changes), with the held-out curve (`eval_<name>`) drawn in the same panel as its training curve.
The legend says what each loss is, from what the run logged: the training loss is measured with
`training=True` (noise and dropout on, if the model has any) and adds the model's own losses,
named when the model logs them (training-only values such as `reconstruction_loss`); the held-out
loss is the task's loss alone with `training=False`, so the two need not meet. The best
checkpoint (`checkpoint.best_metric`) is marked. Training draws it at the end too; TensorBoard
stays the live view (`tensorboard --logdir runs`).

>>> panels([{"step": 1, "loss": 0.5, "accuracy": 0.7, "eval_loss": 0.6, "steps_per_sec": 9.0}])
[('loss', ['loss', 'eval_loss']), ('accuracy', ['accuracy'])]
>>> panels([{"step": 1, "learning_rate": 0.1}, {"step": 2, "learning_rate": 0.1}])
[]
>>> panels([{"step": 1, "eval_modes": 3.0, "eval_real_modes": 8.0, "d_learning_rate": 0.1}])
[('eval_modes', ['eval_modes', 'eval_real_modes'])]
"""

from __future__ import annotations

import contextlib
import math
import os

from .cli import run
from .config import Config, task_name
from .errors import RunError
from .storage import storage_error

NOT_DRAWN = ("step", "steps_per_sec")  # the x axis, and a speed rather than a result
SETTINGS = ("learning_rate",)  # drawn only when a schedule changes it
COLUMNS = 3


def panels(records: list[dict]) -> list[tuple[str, list[str]]]:
    """`(title, keys)` per panel, in the order the keys first appear: `x` with `eval_x`; a
    setting that never changes (a constant learning rate) gets no panel, only a word in the
    title."""
    keys = list(dict.fromkeys(key for record in records for key in record))
    drawn = [
        key
        for key in keys
        if key not in NOT_DRAWN and not (_is_setting(key) and len(_values(records, key)) == 1)
    ]
    result = []
    for key in drawn:
        if key.startswith("eval_") and key.removeprefix("eval_") in drawn:
            continue  # drawn in its training curve's panel
        if key.startswith("eval_real_") and f"eval_{key.removeprefix('eval_real_')}" in drawn:
            continue  # the data's own figure, drawn beside the model's
        held_out = [f"eval_{key}"] * (f"eval_{key}" in drawn)
        real = f"eval_real_{key.removeprefix('eval_')}"  # the data's own (a GAN's baseline)
        result.append((key, [key, *held_out, *[real] * (real in drawn)]))
    return result


def _kind(key: str) -> str:
    if key.startswith("eval_real_"):
        return "the data's own"
    return "held-out" if key.startswith("eval_") else "training"


def _is_setting(key: str) -> bool:
    """A learning rate (of the one optimizer, or `<name>_learning_rate` of several)."""
    return key in SETTINGS or key.endswith("_learning_rate")


def _values(records: list[dict], key: str) -> set:
    return {record[key] for record in records if isinstance(record.get(key), (int, float))}


# Logged values that are not a model's own: the loop's figures.
LOOP_KEYS = ("loss", "grad_norm", *NOT_DRAWN, *SETTINGS)


def labels(records: list[dict]) -> dict[str, str]:
    """What the legend says the losses are, from what the run logged: the model's own values
    are what it logs in training only (no `eval_` twin, not one of the loop's figures).

    >>> labels([{"step": 1, "loss": 0.5, "eval_loss": 0.6}])["loss"]
    'training loss (training=True)'
    >>> labels([{"step": 1, "loss": 0.5, "reconstruction_loss": 0.1, "eval_loss": 0.6}])["loss"]
    "training objective (training=True; + the model's own reconstruction_loss)"
    """
    keys = dict.fromkeys(key for record in records for key in record)
    own = [
        key
        for key in keys
        if key.endswith("loss")
        and key not in LOOP_KEYS
        and not key.startswith("eval_")
        and f"eval_{key}" not in keys
    ]
    loss = (
        f"training objective (training=True; + the model's own {', '.join(own)})"
        if own
        else "training loss (training=True)"
    )
    return {"loss": loss, "eval_loss": "held-out loss (training=False, the task's loss alone)"}


def _best(run_dir: str) -> dict | None:
    """`checkpoints/best/best.json` of the run (metric, step, value), if it keeps one."""
    import json

    try:
        with open(os.path.join(run_dir, "checkpoints", "best", "best.json"), encoding="utf-8") as f:
            best = json.load(f)
        return best if best.get("step") is not None else None
    except (OSError, ValueError, AttributeError):
        return None


def _title(run_dir: str, records: list[dict]) -> str:
    """The figure's title: the run, its task and what does not change."""
    import json

    task = ""
    try:
        with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as file:
            target = json.load(file)["config"]["task"]["_target_"]
        task = f", task={task_name(target)}"
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    constant = _values(records, "learning_rate")
    rate = f", learning rate {next(iter(constant)):.3g} throughout" if len(constant) == 1 else ""
    return f"{os.path.basename(os.path.normpath(run_dir))}{task}{rate}"


def plot_curves(run_dir: str) -> str:
    """Draws the curves of `run_dir/metrics.jsonl` into `run_dir/curves.png`; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    from .records import read_metrics

    try:
        records = read_metrics(run_dir)
    except FileNotFoundError:
        raise RunError(f"run_dir={run_dir}: no metrics.jsonl there; train into it first") from None
    layout = panels(records)
    rows = max(1, math.ceil(len(layout) / COLUMNS))
    figure, axes = plt.subplots(
        rows, COLUMNS, figsize=(4.5 * COLUMNS, 3.3 * rows), constrained_layout=True, squeeze=False
    )
    for axis in axes.flat[len(layout) :]:
        axis.set_visible(False)
    best = _best(run_dir)
    named = labels(records)
    for axis, (title, keys) in zip(axes.flat, layout):
        positive = True
        for key in keys:
            points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if points:
                label = named.get(key, _kind(key))
                axis.plot(*zip(*points), marker="." if len(points) < 30 else None, label=label)
                positive = positive and min(p[1] for p in points) > 0
        if best and best["metric"] in (title, f"eval_{title}"):
            axis.axvline(best["step"], color="gray", linestyle="--", linewidth=1)
            axis.plot(
                [best["step"]],
                [best["value"]],
                "k*",
                markersize=10,
                label=f"best checkpoint (step {best['step']})",
            )
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
        if len(axis.get_lines()) > 1:
            axis.legend(fontsize="small")
        if title.endswith("loss") and positive:
            axis.set_yscale("log")
    figure.suptitle(_title(run_dir, records))
    path = os.path.join(run_dir, "curves.png")
    tmp = os.path.join(run_dir, "curves.tmp.png")
    try:
        figure.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    except OSError as error:  # no space, read-only, a directory in the way...
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise storage_error(path, error) from None
    finally:
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    def plot(cfg: Config) -> str:
        path = plot_curves(cfg.run_dir)
        print(f"wrote {path}")
        return path

    return run(f"{__package__}.plot", plot, argv, tensorflow=False, keys=("run_dir",))


if __name__ == "__main__":
    raise SystemExit(main())
