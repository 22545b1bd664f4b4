"""Where a run's numbers go: `metrics.jsonl`, TensorBoard summaries, and a progress bar.

Only the chief writes files; other workers get a `RunLog` with `enabled=False`. A write that
fails (no space, a file in the way...) stops the run in one line naming the file and the real
cause (`storage.py`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.record_writer import RecordWriter
from tqdm.auto import tqdm

from ..records import line_step, read_metrics  # noqa: F401 - read_metrics: the loop's reader too
from ..storage import storage_error


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
            try:
                drop_lines_after(self.path, start_step)
            except OSError as error:
                raise storage_error(self.path, error) from None
        # tqdm disables itself when stderr is not a terminal (disable=None). Its own rate is left
        # out: smoothed over the last refreshes, it counts evaluation and checkpoint pauses as
        # training time (a few steps over a long evaluation); the bar shows the loop's logged
        # `steps_per_sec` instead, the figure the run's summary gives.
        self.progress = tqdm(
            total=total_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=None if enabled else True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )
        self.steps_per_sec = None

    def write(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{key: _plain(value) for key, value in values.items()}}
        try:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
        except OSError as error:
            raise storage_error(self.path, error) from None
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
        if isinstance(record.get("steps_per_sec"), float):
            self.steps_per_sec = record["steps_per_sec"]
        if self.steps_per_sec is not None:  # tqdm shows a postfix as `key=value` after a comma
            shown = {"steps/s": f"{self.steps_per_sec:.0f}", **shown}
        self.progress.set_postfix(shown, refresh=False)

    def advance(self, steps: int) -> None:
        self.progress.update(steps)

    def close(self) -> None:
        self.progress.close()
        for writer in self._writers.values():
            writer.close()

    def _writer(self, split: str) -> EventFile:
        if split not in self._writers:
            self._writers[split] = EventFile(os.path.join(self._run_dir, "tensorboard", split))
        return self._writers[split]


class EventFile:
    """One TensorBoard event file, written by the loop itself: one event per log line, each
    flushed, no TensorFlow call (far cheaper between compiled calls than `tf.summary` in a
    traced function). A write that fails raises here, in the loop, naming the file and the
    real cause: TensorBoard's `EventFileWriter` writes from a thread of its own, whose failure
    printed a traceback and came back later without a path."""

    _numbers = itertools.count()

    def __init__(self, directory: str):
        # TensorBoard's own naming: events.out.tfevents.<time>.<host>.<pid>.<number>
        host, number = socket.gethostname(), next(EventFile._numbers)
        name = f"events.out.tfevents.{int(time.time()):010d}.{host}.{os.getpid()}.{number}"
        self.path = os.path.join(directory, name)
        try:
            os.makedirs(directory, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - open until close()
        except OSError as error:
            raise storage_error(self.path, error) from None
        self._records = RecordWriter(self._file)
        self._failed = False
        self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event: event_pb2.Event) -> None:
        try:
            self._records.write(event.SerializeToString())
            self._file.flush()
        except OSError as error:
            self._failed = True
            raise storage_error(self.path, error) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as error:
            if not self._failed:  # else already reported, by the write that failed
                raise storage_error(self.path, error) from None


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
