"""Shipped actions for `actions=[...]` (conf/actions/): the loop runs them at their cadence.

- `confusion_matrix`: at each evaluation, the held-out confusion matrix and the worst-predicted
  held-out examples as TensorBoard images (a classifier: task=image_classification).
- `mlflow`: the run in an MLflow tracking store, a local SQLite file by default
  (`pip install -e '.[mlflow]'`).

Each is an `Action` (loop/actions.py), the same shape as one of yours.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from .errors import RunError
from .loop.actions import Action
from .loop.run_dir import write_json
from .storage import storage_error
from .sweep import swept_overrides

__all__ = ["ConfusionMatrix", "MLflowTracker"]


class ConfusionMatrix(Action):
    """At each evaluation (`eval.every_steps`, or `every_steps`): a confusion matrix of the
    held-out set and its `worst` examples (highest loss, titled true -> predicted) as images in
    TensorBoard (Images tab, run `eval_images`); the latest matrix also in
    `run_dir/confusion_matrix.json`. For a task whose `serve` gives `class_ids` and
    `probabilities`; with weight averages on, of the averaged weights, as the evaluation."""

    def __init__(self, every_steps: int | None = None, worst: int = 16, batch_size: int = 256):
        if worst < 0 or batch_size <= 0:
            raise ValueError(f"worst={worst}, batch_size={batch_size}: need >= 0 and > 0")
        self.every_steps, self.worst, self.batch_size = every_steps, worst, batch_size
        self.writer = None

    def check(self, run):
        x, _ = next(iter(run.source.eval_dataset(2)))
        served = run.task.serve(run.model, x)
        missing = {"class_ids", "probabilities"} - set(served)
        if missing:
            raise RunError(
                f"actions.confusion_matrix: task={run.task.name} serves no "
                f"{', '.join(sorted(missing))}: a classifier's task does "
                "(task=image_classification)"
            )

    def begin(self, run, step):
        if self.every_steps is None:
            self.every_steps = run.cfg.eval.every_steps
        if run.is_chief:
            directory = os.path.join(run.run_dir, "tensorboard", "eval_images")
            self.writer = tf.summary.create_file_writer(directory)

    def __call__(self, run, boundary):
        with run.trainer.averaged_weights():
            x, y, class_ids, probabilities = self._predict(run)
        if not run.is_chief:
            return
        classes = probabilities.shape[-1]
        matrix = tf.math.confusion_matrix(y, class_ids, num_classes=classes).numpy()
        record = {"step": boundary.step, "rows_true_columns_predicted": matrix.tolist()}
        write_json(os.path.join(run.run_dir, "confusion_matrix.json"), record)
        images = {"confusion_matrix": _png(_matrix_figure(matrix, boundary.step))}
        if self.worst and x.ndim == 4 and x.shape[-1] in (1, 3):
            loss = -np.log(np.maximum(probabilities[np.arange(len(y)), y], 1e-12))
            worst = np.argsort(-loss, kind="stable")[: self.worst]
            figure = _examples_figure(x[worst], y[worst], class_ids[worst], boundary.step)
            images["worst_examples"] = _png(figure)
        try:
            with self.writer.as_default(step=boundary.step):
                for name, png in images.items():
                    tf.summary.image(name, tf.image.decode_png(png)[None])
            self.writer.flush()
        except (OSError, tf.errors.OpError) as error:  # no space, a file in the way...
            directory = os.path.join(run.run_dir, "tensorboard", "eval_images")
            raise storage_error(directory, error) from None

    def _predict(self, run):
        xs, ys, ids, probabilities = [], [], [], []
        for x, y in run.source.eval_dataset(self.batch_size):
            served = run.task.serve(run.model, x)
            xs.append(x.numpy())
            ys.append(y.numpy())
            ids.append(served["class_ids"].numpy())
            probabilities.append(served["probabilities"].numpy())
        return tuple(np.concatenate(parts) for parts in (xs, ys, ids, probabilities))

    def end(self, run):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowTracker(Action):
    """The run in an MLflow tracking store: its config as parameters, every logged value at the
    loop's cadence (the same steps as metrics.jsonl), the final and best values (`final_*`,
    `best_*`), and, at the end, the exported model as artifacts (`export/`).

    `tracking_uri`: a local SQLite file by default (no server to start; `mlflow ui
    --backend-store-uri sqlite:///mlflow.db` shows it), or a team server's address.
    `experiment`: default the task's name, so the jobs of a sweep are runs of one experiment.
    A resumed run_dir goes on in the same MLflow run (its id is kept in run_dir/mlflow_run.json).
    """

    def __init__(
        self,
        tracking_uri: str = "sqlite:///mlflow.db",
        experiment: str | None = None,
        log_model: bool = True,
    ):
        self.tracking_uri, self.experiment, self.log_model = tracking_uri, experiment, log_model
        self.client, self.run_id = None, None

    def check(self, run):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise RunError(
                "actions.mlflow: MLflow is not installed: pip install -e '.[mlflow]'"
            ) from None

    def begin(self, run, step):
        if not run.is_chief:
            return
        from mlflow import MlflowClient
        from mlflow.entities import Param

        from .config import flat

        for name in ("alembic", "mlflow"):  # their start-up lines say nothing to a user
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(self.tracking_uri)
        name = self.experiment or run.task.name
        found = self.client.get_experiment_by_name(name)
        # The UI opens an experiment of this kind on its training runs, not the empty GenAI view.
        kind = {"mlflow.experimentKind": "custom_model_development"}
        experiment_id = (
            found.experiment_id if found else self.client.create_experiment(name, tags=kind)
        )
        path = os.path.join(run.run_dir, "mlflow_run.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                self.run_id = json.load(file)["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {"run_dir": os.path.abspath(run.run_dir), "task": run.task.name}
        # a sweep job by what sets it apart (`optimizer.learning_rate=0.003 seed=1`), not `0`, `1`
        swept = " ".join(swept_overrides(run.run_dir))
        run_name = swept[:240] or os.path.basename(os.path.abspath(run.run_dir))
        created = self.client.create_run(experiment_id, tags=tags, run_name=run_name)
        self.run_id = created.info.run_id
        write_json(path, {"run_id": self.run_id, "tracking_uri": self.tracking_uri})
        params = [Param(key, str(value)[:6000]) for key, value in flat(run.cfg).items()]
        for start in range(0, len(params), 100):  # MLflow takes 100 parameters per call
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def __call__(self, run, boundary):
        if self.client is not None and boundary.logs:
            self._log(boundary.logs, boundary.step)

    def _log(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def end(self, run):
        if self.client is None:
            return
        if run.result is None:  # stopped or failed: the same command resumes this MLflow run
            self.client.set_terminated(self.run_id, status="KILLED")
            return
        result = run.result
        final = {f"final_{key}": value for key, value in run.logs.items()}
        final.update({key: value for key, value in result.items() if key.startswith("best_")})
        self._log(final, result["step"])
        if self.log_model:
            export = [sys.executable, "-m", f"{__package__}.export", f"run_dir={run.run_dir}"]
            subprocess.run(export, check=True, capture_output=True)
            export_dir = os.path.join(run.run_dir, "export")
            self.client.log_artifacts(self.run_id, export_dir, artifact_path="export")
        self.client.set_terminated(self.run_id, status="FINISHED")
        self.client = None


def read_confusion_matrix(run_dir: str) -> dict:
    """The latest matrix the action wrote: {"step": ..., "rows_true_columns_predicted": ...}."""
    with open(os.path.join(run_dir, "confusion_matrix.json"), encoding="utf-8") as file:
        return json.load(file)


def _matrix_figure(matrix, step):
    from matplotlib.figure import Figure

    classes = len(matrix)
    figure = Figure(figsize=(4 + classes * 0.3, 4 + classes * 0.3))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    axes.set(xlabel="predicted class", ylabel="true class", title=f"held-out, step {step}")
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    return figure


def _examples_figure(images, true, predicted, step):
    from matplotlib.figure import Figure

    columns = min(len(images), 8)
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(columns * 1.2, rows * 1.4 + 0.4))
    figure.suptitle(f"worst held-out examples, step {step} (true -> predicted)")
    for index, (image, t, p) in enumerate(zip(images, true, predicted, strict=True)):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        axes.set_title(f"{t} -> {p}", fontsize=8, color="black" if t == p else "red")
        axes.axis("off")
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()
