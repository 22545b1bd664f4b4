"""Where a run's numbers go: `metrics.jsonl`, TensorBoard summaries, and a progress bar.

Only the chief writes files; other workers get a `RunLog` with `enabled=False`.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
from tqdm.auto import tqdm

from ..records import line_step, read_metrics  # noqa: F401 - read_metrics: the loop's reader too


class RunLog:
    """Appends one JSON line per logged step and mirrors it to TensorBoard.

    The files are written by a thread of their own, in order, while the next steps compute (a
    line took 0.8 ms of the loop's time on 2 CPU cores); `flush` waits for them. The loop
    flushes before each checkpoint, so every line up to a saved step is on disk before the
    checkpoint is, and `close` flushes. A write that failed raises at the next `write`, `flush`
    or `close`.
    """

    def __init__(
        self,
        run_dir: str,
        total_steps: int,
        start_step: int,
        progress_fields: tuple[str, ...] = ("loss",),
        enabled: bool = True,
    ):
        self.enabled = enabled
        self.progress_fields = progress_fields
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self._writers, self._scalar_writers = {}, {}
        self._run_dir = run_dir
        self._pending = []  # futures of lines not known to be written, oldest first
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="run-log") if enabled else None
        if enabled:
            drop_lines_after(self.path, start_step)
        # tqdm disables itself when stderr is not a terminal (disable=None).
        self.progress = tqdm(
            total=total_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=None if enabled else True,
        )

    def write(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{key: _plain(value) for key, value in values.items()}}
        self._raise_failed()
        self._pending.append(self._thread.submit(self._append, record))
        shown = {
            key: f"{record[key]:.4g}" if isinstance(record[key], float) else record[key]
            for key in self.progress_fields
            if key in record
        }
        self.progress.set_postfix(shown, refresh=False)

    def flush(self) -> None:
        """Returns once every line so far is written; raises the error of one that failed."""
        while self._pending:
            self._pending.pop(0).result()

    def _raise_failed(self) -> None:
        while self._pending and self._pending[0].done():
            self._pending.pop(0).result()

    def _append(self, record: dict) -> None:  # on the writer thread
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        step = record["step"]
        splits = {"train": {}, "eval": {}}
        for key, value in record.items():
            if key != "step" and isinstance(value, float):
                split, name = ("eval", key[5:]) if key.startswith("eval_") else ("train", key)
                splits[split][name] = value
        for split, scalars in splits.items():
            if scalars:
                write = self._scalar_writer(split, tuple(scalars))
                write(tf.constant(list(scalars.values()), tf.float32), tf.constant(step, tf.int64))

    def advance(self, steps: int) -> None:
        self.progress.update(steps)

    def close(self) -> None:
        self.progress.close()
        try:
            self.flush()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)
            for writer in self._writers.values():
                writer.close()

    def _scalar_writer(self, split: str, names: tuple[str, ...]):
        """A traced function writing `names` to the split's event file: one call per line
        instead of an eager op per scalar (0.4 ms instead of 1.6 ms on 2 CPU cores)."""
        if split not in self._writers:
            logdir = os.path.join(self._run_dir, "tensorboard", split)
            self._writers[split] = tf.summary.create_file_writer(logdir)
        key = (split, names)
        if key not in self._scalar_writers:
            writer = self._writers[split]

            @tf.function
            def write(values, step):
                with writer.as_default(step=step):
                    for index, name in enumerate(names):
                        tf.summary.scalar(name, values[index])

            self._scalar_writers[key] = write
        return self._scalar_writers[key]


def _plain(value):
    value = float(value) if not isinstance(value, (int, str)) else value
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def drop_lines_after(path: str, step: int) -> None:
    """On resume, forget lines a killed process logged after its last checkpoint."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as file:
        lines = file.readlines()
    kept = [line for line in lines if line_step(line) is not None and line_step(line) <= step]
    if len(kept) != len(lines):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as file:
            file.writelines(kept)
        os.replace(tmp, path)
