"""Reading `metrics.jsonl` without TensorFlow (the loop writes it: `loop/logs.py`)."""

from __future__ import annotations

import json
import os


def line_step(line: str) -> int | None:
    """The step of one line of `metrics.jsonl`, or None for a line a kill cut short."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(run_dir: str) -> list[dict]:
    """The records of `run_dir/metrics.jsonl`, in order (without a line a kill cut short)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path, encoding="utf-8") as file:
        lines = file.readlines()
    return [json.loads(line) for line in lines if line.strip() and line_step(line) is not None]
