"""The summary of a sweep (`-m`): one row per job, as a table, a CSV file and a plot.

Hydra calls `SweepSummary.on_multirun_end` once every job of `python -m <package>.train -m ...`
has ended. It reads each job's directory (`<sweep dir>/<job number>/`): the overrides Hydra
records (`.hydra/overrides.yaml`) and the run's `final_metrics.json`. It writes
`summary.csv` and `summary.png` into the sweep directory and prints the table with the best job
by `checkpoint.best_metric` (or `eval_loss`, lowest first).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys

import yaml
from hydra.experimental.callback import Callback

from .errors import EXIT_USAGE


def job_directories(sweep_dir: str) -> list[str]:
    """The names of the job directories of a sweep (`0`, `1`...)."""
    return [
        name
        for name in os.listdir(sweep_dir)
        if name.isdigit() and os.path.isdir(os.path.join(sweep_dir, name))
    ]


def recorded_overrides(sweep_dir: str) -> list[str] | None:
    """The command-line overrides of the sweep that wrote `sweep_dir` (Hydra's
    `multirun.yaml`), or None where there is no readable record."""
    try:
        with open(os.path.join(sweep_dir, "multirun.yaml"), encoding="utf-8") as f:
            return list(yaml.safe_load(f)["hydra"]["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def job_rows(sweep_dir: str) -> list[dict]:
    """One row per job directory of the sweep, in job order."""
    rows = []
    for name in sorted(job_directories(sweep_dir), key=int):
        directory = os.path.join(sweep_dir, name)
        try:
            with open(os.path.join(directory, ".hydra", "overrides.yaml"), encoding="utf-8") as f:
                overrides = " ".join(yaml.safe_load(f) or [])
        except OSError:
            overrides = ""
        row = {"job": int(name), "overrides": overrides, "status": "done"}
        try:
            with open(os.path.join(directory, "final_metrics.json"), encoding="utf-8") as file:
                final = json.load(file)
        except (OSError, ValueError):
            row["status"] = "failed or stopped"
            final = {}
        row.update(
            {
                key: value
                for key, value in final.items()
                if key == "step"
                or key == "steps_per_sec"
                or key.startswith(("eval_", "best_"))
                or key in ("loss",)
            }
        )
        rows.append(row)
    return rows


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    scored = [
        row
        for row in rows
        if isinstance(row.get(metric), (int, float)) and math.isfinite(row[metric])
    ]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda row: row[metric])


def write_summary(sweep_dir: str, metric: str = "eval_loss", mode: str = "min") -> list[dict]:
    """Writes `summary.csv` and `summary.png` into `sweep_dir`; returns the rows."""
    rows = job_rows(sweep_dir)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(os.path.join(sweep_dir, "summary.csv"), "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, metric, os.path.join(sweep_dir, "summary.png"))
    return rows


def _plot(rows: list[dict], metric: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if isinstance(row.get(metric), (int, float))]
    figure, axis = plt.subplots(figsize=(8, 0.5 * max(len(shown), 2) + 1), constrained_layout=True)
    labels = [f"{row['job']}: {row['overrides']}" for row in shown]
    axis.barh(labels, [row[metric] for row in shown])
    axis.invert_yaxis()
    axis.set_xlabel(metric)
    axis.grid(alpha=0.3, axis="x")
    figure.savefig(path, dpi=100)
    plt.close(figure)


class SweepSummary(Callback):
    """Hydra callback (configured in `conf/config.yaml`) that summarizes a finished sweep.

    A sweep directory belongs to one sweep: the same command run again resumes it (each job
    resumes its own run directory), but a sweep with other overrides into a directory that
    already holds jobs is refused in one line before any job runs (its jobs would resume the
    old jobs' checkpoints and the summary would report the old results under the new labels).
    The default directory is time-stamped to the microsecond, so two sweeps started in the same
    second differ.
    """

    def on_multirun_start(self, config, **kwargs) -> None:
        sweep_dir = config.hydra.sweep.dir
        taken = sorted(job_directories(sweep_dir), key=int) if os.path.isdir(sweep_dir) else []
        if not taken:
            return
        previous = recorded_overrides(sweep_dir)
        if previous == list(config.hydra.overrides.task):
            print(f"resuming the sweep in {sweep_dir} (jobs {taken[0]}..{taken[-1]} exist)")
            return
        shown = " ".join(previous) if previous is not None else "unknown overrides"
        print(
            f"error: hydra.sweep.dir={sweep_dir}: already holds a sweep of other overrides "
            f"({shown}; jobs {taken[0]}..{taken[-1]}); give each sweep its own directory, or run "
            "that sweep's command again to resume it",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = config.hydra.sweep.dir
        if not os.path.isdir(sweep_dir):
            return
        metric = config.checkpoint.best_metric or "eval_loss"
        mode = config.checkpoint.best_mode if config.checkpoint.best_metric else "min"
        rows = write_summary(sweep_dir, metric, mode)
        for row in rows:
            value = row.get(metric)
            shown = f"{value:.6g}" if isinstance(value, float) else row["status"]
            rate = row.get("steps_per_sec")
            speed = f", {rate:.0f} steps/s" if isinstance(rate, float) else ""
            print(f"job {row['job']}: {row['overrides']}: {metric}={shown}{speed}")
        best = best_row(rows, metric, mode)
        if best is not None:
            print(
                f"best: job {best['job']} ({best['overrides']}), {metric}={best[metric]:.6g}; "
                f"summary in {os.path.join(sweep_dir, 'summary.csv')}"
            )
