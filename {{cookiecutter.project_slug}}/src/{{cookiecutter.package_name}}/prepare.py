"""Write a task's data as sharded TFRecord files that `train data.files=<directory>` streams.

    python -m {{ cookiecutter.package_name }}.prepare data.files=data/regression
    python -m {{ cookiecutter.package_name }}.prepare data.files=data/digits task=image_classification \
        data.shards=32
    python -m {{ cookiecutter.package_name }}.prepare data.files=data/mine data.path=mine.npz

The shards hold what the run would otherwise keep in memory: the task's own data (`task.<key>`
sets its size) or an `.npz` (`data.path`), checked by the task first. The directory must be new or
empty; it appears whole or not at all. See `shards/` for the format.
"""

from __future__ import annotations

import json
import os
import sys

from .cli import run
from .config import Config, ConfigError


def prepare(cfg: Config) -> dict:
    """Writes `cfg`'s train and held-out data into the directory `data.files`; returns its
    `dataset.json`."""
    from .shards import write_shards
    from .tasks.base import make_task

    directory = cfg.data.files
    if not directory or any(char in directory for char in "*?"):
        raise ConfigError(
            f"data.files={directory!r}: prepare needs the directory to write into, e.g. "
            "data.files=data/shards (a glob is for reading)"
        )
    task = make_task(cfg)
    arrays = task.arrays(cfg.data.path)
    meta = write_shards(arrays, directory, cfg.data.shards, task.data_name(cfg.data.path), cfg.seed)
    size = sum(
        os.path.getsize(os.path.join(directory, name))
        for split in meta["splits"].values()
        for name in split["files"]
    )
    counts = {split: len(part["files"]) for split, part in meta["splits"].items()}
    print(
        f"wrote {meta['splits']['train']['examples']} training examples in {counts['train']} "
        f"shards and {meta['splits']['eval']['examples']} held-out in {counts['eval']} "
        f"({size / 2**20:.1f} MiB) to {directory}",
        file=sys.stderr,
    )
    print(
        f"train on them: python -m {__package__}.train data.files={directory} task={task.name}",
        file=sys.stderr,
    )
    print(json.dumps({"directory": directory, "bytes": size, **counts}))
    return meta


def main(argv: list[str] | None = None) -> int:
    return run(
        f"{__package__}.prepare",
        prepare,
        argv,
        keys=("data.files", "data.path", "data.shards", "task", "seed"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
