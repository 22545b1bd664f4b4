"""Shipped actions for `callbacks=[...]` (conf/callbacks/): the loop runs them at their cadence.

- `confusion_matrix`: at each evaluation, the held-out confusion matrix and the worst-predicted
  held-out examples as TensorBoard images (a classifier: task=image_classification).
- `mlflow`: every run in an MLflow tracking store (`pip install -e '.[mlflow]'`).

Each is an `Action` (loop/actions.py), the same shape as one of yours.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import tensorflow as tf

from .errors import RunError
from .loop.actions import Action
from .loop.run_dir import write_json

__all__ = ["ConfusionMatrix"]


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
                f"callbacks.confusion_matrix: task={run.task.name} serves no "
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
        with self.writer.as_default(step=boundary.step):
            for name, png in images.items():
                tf.summary.image(name, tf.image.decode_png(png)[None])
        self.writer.flush()

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
