"""Where a run's numbers go: `metrics.jsonl`, TensorBoard summaries, and a progress bar.

Only the chief writes files; other workers get a `RunLog` with `enabled=False`.
"""

from __future__ import annotations

import json
import math
import os
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tqdm.auto import tqdm

from ..records import line_step, read_metrics  # noqa: F401 - read_metrics: the loop's reader too


class RunLog:
    """Appends one JSON line per logged step and mirrors it to TensorBoard."""

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
        self._writers = {}
        self._run_dir = run_dir
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
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        splits = {"train": {}, "eval": {}}
        for key, value in record.items():
            if key != "step" and isinstance(value, float):
                split, name = ("eval", key[5:]) if key.startswith("eval_") else ("train", key)
                splits[split][name] = value
        for split, scalars in splits.items():
            if scalars:
                self._writer(split).add_event(scalar_event(step, scalars))
        shown = {
            key: f"{record[key]:.4g}" if isinstance(record[key], float) else record[key]
            for key in self.progress_fields
            if key in record
        }
        self.progress.set_postfix(shown, refresh=False)

    def advance(self, steps: int) -> None:
        self.progress.update(steps)

    def close(self) -> None:
        self.progress.close()
        for writer in self._writers.values():
            writer.close()

    def _writer(self, split: str) -> EventFileWriter:
        """The split's event file, written by TensorBoard's own writer: one event per line, no
        TensorFlow call (far cheaper between compiled calls than `tf.summary` in a traced
        function)."""
        if split not in self._writers:
            self._writers[split] = EventFileWriter(
                os.path.join(self._run_dir, "tensorboard", split)
            )
        return self._writers[split]


def scalar_event(step: int, scalars: dict) -> event_pb2.Event:
    """One event holding every value of `scalars` at `step`, as `tf.summary.scalar` writes
    them (a float32 tensor with the scalars plugin's metadata)."""
    event = event_pb2.Event(step=step, wall_time=time.time())
    for name, value in scalars.items():
        event.summary.value.extend(scalar_pb(name, value).value)
    return event


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
