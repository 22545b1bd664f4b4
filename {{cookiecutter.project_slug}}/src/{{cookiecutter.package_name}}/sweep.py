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
import tempfile

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback

from .errors import EXIT_USAGE
from .storage import StorageError, storage_cause, storage_error


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


def job_overrides(directory: str) -> list[str]:
    """The overrides of the sweep job that ran in `directory` (Hydra's `.hydra/overrides.yaml`),
    or none where there is no readable record."""
    try:
        with open(os.path.join(directory, ".hydra", "overrides.yaml"), encoding="utf-8") as f:
            return list(yaml.safe_load(f) or [])
    except (OSError, yaml.YAMLError, TypeError):
        return []


def swept_overrides(directory: str) -> list[str]:
    """What sets the sweep job in `directory` apart: its overrides that are not the sweep
    command's own (`seed=1` of `seed=0,1`; a value a search sampled); none outside a sweep.

    >>> swept_overrides("no/such/run")
    []
    """
    command = recorded_overrides(os.path.dirname(os.path.abspath(directory))) or []
    # By key, as Hydra parses them: a job records `uri=sqlite\:///x` for the command's
    # `uri=sqlite:///x` (its escaping), and both set the same fixed value.
    parser = OverridesParser.create()
    try:
        fixed = {
            override.key_or_group
            for override in parser.parse_overrides(command)
            if not override.is_sweep_override()
        }
        return [
            override
            for override in job_overrides(directory)
            if parser.parse_override(override).key_or_group not in fixed
        ]
    except OverrideParseException:  # a hand-edited record: as written
        return [override for override in job_overrides(directory) if override not in command]


def job_rows(sweep_dir: str) -> list[dict]:
    """One row per job directory of the sweep, in job order."""
    rows = []
    for name in sorted(job_directories(sweep_dir), key=int):
        directory = os.path.join(sweep_dir, name)
        listed = job_overrides(directory)
        row = {"job": int(name), "overrides": " ".join(listed), "status": "done"}
        # One column per swept key, so a spreadsheet can sort and group by each.
        row.update(override.lstrip("+~").split("=", 1) for override in listed if "=" in override)
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


def best_setting(grouped: list[dict], mode: str) -> dict | None:
    """The setting with the best mean over its seeds (`by_setting`'s rows), None if none has one.

    >>> best_setting([{"lr": "0.1", "mean": 0.3}, {"lr": "0.3", "mean": 0.2}], "min")["lr"]
    '0.3'
    """
    scored = [row for row in grouped if "mean" in row]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda row: row["mean"])


def settings(rows: list[dict]) -> list[str]:
    """The swept keys other than `seed`: what a setting is, over which seeds are repeats."""
    keys = dict.fromkeys(
        key for row in rows for key in row if "." in key or key in ("task", "precision")
    )
    return [key for key in keys if key != "seed"]


def by_setting(rows: list[dict], metric: str) -> list[dict]:
    """One row per setting (the swept keys but `seed`): how many jobs finished, and the mean,
    standard deviation, min and max of `metric` over them (its seeds).

    >>> rows = [
    ...     {"optimizer.learning_rate": "0.1", "seed": "0", "eval_loss": 1.0},
    ...     {"optimizer.learning_rate": "0.1", "seed": "1", "eval_loss": 3.0},
    ... ]
    >>> row = by_setting(rows, "eval_loss")[0]
    >>> row["optimizer.learning_rate"], row["runs"], row["mean"], row["std"]
    ('0.1', 2, 2.0, 1.0)
    """
    keys = settings(rows)
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        value = row.get(metric)
        group = groups.setdefault(tuple(row.get(key, "") for key in keys), [])
        if isinstance(value, (int, float)) and math.isfinite(value):
            group.append(float(value))
    result = []
    for setting, values in groups.items():
        entry = dict(zip(keys, setting))
        entry["runs"] = len(values)
        if values:
            mean = sum(values) / len(values)
            entry.update(
                mean=mean,
                std=math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
                min=min(values),
                max=max(values),
            )
        result.append(entry)
    return result


def _write_csv(path: str, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_summary(sweep_dir: str, metric: str = "eval_loss", mode: str = "min") -> list[dict]:
    """Writes `summary.csv` (one row per job, one column per swept key),
    `summary_by_setting.csv` (mean and spread over seeds) and `summary.png` into
    `sweep_dir`; returns the job rows."""
    rows = job_rows(sweep_dir)
    grouped = by_setting(rows, metric)
    path = os.path.join(sweep_dir, "summary.csv")
    try:
        _write_csv(path, rows)
        path = os.path.join(sweep_dir, "summary_by_setting.csv")
        _write_csv(path, grouped)
        path = os.path.join(sweep_dir, "summary.png")
        _plot(grouped, settings(rows), metric, mode, path)
    except OSError as error:  # no space, read-only, a directory in the way...
        raise storage_error(path, error) from None
    return rows


def short_value(value) -> str:
    """A swept value as a label shows it: numbers to 3 significant digits.

    >>> short_value("0.0012345678901234"), short_value("adamw"), short_value("3")
    ('0.00123', 'adamw', '3')
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.3g}" if math.isfinite(number) else str(value)


def plotted(grouped: list[dict], keys: list[str], mode: str) -> list[tuple[str, dict]]:
    """The bars of `summary.png`: one per setting with a mean, best first, each labelled with
    its swept values (the last part of each key, numbers shortened).

    >>> rows = [{"optimizer.learning_rate": "0.0031415926", "mean": 0.5},
    ...         {"optimizer.learning_rate": "0.001", "mean": 0.25}]
    >>> [label for label, _ in plotted(rows, ["optimizer.learning_rate"], "min")]
    ['learning_rate=0.001', 'learning_rate=0.00314']
    """
    names = [key.rsplit(".", 1)[-1] for key in keys]
    if len(set(names)) < len(names):  # two keys end alike (model.units, head.units)
        names = list(keys)
    shown = sorted((row for row in grouped if "mean" in row), key=lambda row: row["mean"])
    if mode != "min":
        shown.reverse()

    def label(row):
        return " ".join(f"{n}={short_value(row[k])}" for n, k in zip(names, keys))

    return [(label(row) or "(one setting)", row) for row in shown]


def _plot(grouped: list[dict], keys: list[str], metric: str, mode: str, path: str) -> None:
    """One bar per setting, best at the top and marked: the mean of `metric` over its seeds, the
    spread as an error bar (min to max); labels are sized to fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = plotted(grouped, keys, mode)
    labels = [label for label, _ in bars]
    shown = [row for _, row in bars]
    width = 4 + 0.09 * max((len(label) for label in labels), default=10)
    height = 0.35 * max(len(shown), 2) + 1.2
    figure, axis = plt.subplots(figsize=(width, height), constrained_layout=True)
    means = [row["mean"] for row in shown]
    spread = [
        [m - row["min"] for m, row in zip(means, shown)],
        [row["max"] - m for m, row in zip(means, shown)],
    ]
    colors = ["tab:orange"] + ["tab:blue"] * (len(shown) - 1)
    axis.barh(labels, means, xerr=spread, capsize=4, alpha=0.7, color=colors)
    if shown:
        axis.annotate(
            f" best: {means[0]:.4g}", (means[0], 0), va="center", fontsize=9, color="tab:orange"
        )
    axis.invert_yaxis()
    runs = max((row["runs"] for row in shown), default=1)
    axis.set_xlabel(f"{metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    axis.set_title(
        f"mean over {runs} seeds per setting, best first; error bars: min to max"
        if runs > 1
        else f"{metric} per setting, best first"
    )
    axis.grid(alpha=0.3, axis="x")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_hparams(sweep_dir: str, rows: list[dict], metric: str) -> str | None:
    """TensorBoard's HParams view of the sweep: one run per job under `sweep_dir/hparams`, its
    swept keys as hyperparameters and its final figures as metrics
    (`tensorboard --logdir <sweep_dir>/hparams`). None without TensorFlow."""
    try:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        return None
    root = os.path.join(sweep_dir, "hparams")
    keys = [*settings(rows), *(["seed"] if any("seed" in row for row in rows) else [])]
    for row in rows:
        figures = {k: v for k, v in row.items() if k.startswith(("eval_", "best_")) or k == "loss"}
        if not figures:
            continue
        directory = os.path.join(root, str(row["job"]))
        try:
            with tf.summary.create_file_writer(directory).as_default():
                hp.hparams({key: str(row.get(key, "")) for key in keys}, trial_id=str(row["job"]))
                for name, value in figures.items():
                    if isinstance(value, (int, float)):
                        tf.summary.scalar(name, value, step=int(row.get("step", 0)))
        except (OSError, tf.errors.OpError) as error:
            raise storage_error(directory, error) from None
    return root


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
        try:  # made and proven writable before Hydra writes into it (its error: a traceback)
            os.makedirs(sweep_dir, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=sweep_dir):
                pass
        except OSError as error:
            cause = storage_cause(error, os.path.join(sweep_dir, "x"))
            print(f"error: hydra.sweep.dir={sweep_dir}: not writable ({cause})", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
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
        try:
            rows = write_summary(sweep_dir, metric, mode)
        except StorageError as error:
            print(f"error: {error}; each job's results stay in its directory", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        for row in rows:
            value = row.get(metric)
            shown = f"{value:.6g}" if isinstance(value, float) else row["status"]
            rate = row.get("steps_per_sec")
            speed = f", {rate:.0f} steps/s" if isinstance(rate, float) else ""
            print(f"job {row['job']}: {row['overrides']}: {metric}={shown}{speed}")
        grouped = by_setting(rows, metric)
        if any(row["runs"] > 1 for row in grouped):  # seeds repeat a setting: compare means
            keys = settings(rows)
            for row in grouped:
                if "mean" in row:
                    shown = " ".join(f"{key}={row[key]}" for key in keys)
                    print(
                        f"{shown}: {metric} mean {row['mean']:.6g} +- {row['std']:.2g} "
                        f"over {row['runs']} seeds (min {row['min']:.6g}, max {row['max']:.6g})"
                    )
        summary = os.path.join(sweep_dir, "summary.csv")
        best = best_setting(grouped, mode)
        if any(row["runs"] > 1 for row in grouped) and best is not None:  # by the means
            keys = settings(rows)
            jobs = [row["job"] for row in rows if all(row.get(k, "") == best[k] for k in keys)]
            shown = " ".join(f"{key}={best[key]}" for key in keys)
            print(
                f"best: {shown} ({metric} mean {best['mean']:.6g} over {best['runs']} seeds, "
                f"jobs {', '.join(map(str, jobs))}); summary in {summary}"
            )
        elif (best := best_row(rows, metric, mode)) is not None:
            print(
                f"best: job {best['job']} ({best['overrides']}), {metric}={best[metric]:.6g}; "
                f"summary in {summary}"
            )
        try:
            hparams = write_hparams(sweep_dir, rows, metric)
        except StorageError as error:
            print(f"error: {error}; summary.csv is written", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        if hparams:
            print(f"TensorBoard's HParams view: tensorboard --logdir {hparams}")
