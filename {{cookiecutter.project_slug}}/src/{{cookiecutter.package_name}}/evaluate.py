"""Evaluate a run's newest checkpoint on the held-out split: writes `run_dir/eval.json`.

    python -m {{ cookiecutter.package_name }}.evaluate run_dir=runs/a
    python -m {{ cookiecutter.package_name }}.evaluate run_dir=runs/a checkpoint.which=best

The model is rebuilt from the run's own `run.json`, so only `run_dir` (and, if wanted,
`distribute=...`) need to be given.
"""

from __future__ import annotations

import json
import os

from .cli import run
from .config import Config, saved_run_config


def restore_run(cfg: Config):
    """Builds the run's trainer under `cfg.distribute` and restores its newest checkpoint."""
    from .errors import RunError
    from .loop.checkpoints import CheckpointKeeper
    from .loop.cluster import make_cluster
    from .loop.run_dir import identity_keys, read_run_json, run_identity
    from .loop.threads import configure_threads
    from .loop.trainer import Trainer
    from .tasks.base import make_task

    cfg = saved_run_config(cfg)
    which = cfg.checkpoint.which
    task = make_task(cfg)
    source = task.source(cfg.data)
    configure_threads(cfg, task, source)  # as the training command: the same arithmetic
    cluster = make_cluster(cfg.distribute)
    trainer = Trainer(cfg, cluster, task, source)
    directory = os.path.join(cfg.run_dir, "checkpoints")
    if which == "best":
        directory = os.path.join(directory, "best")
    record = read_run_json(cfg.run_dir) or {}  # its run id, which its checkpoints carry
    identity = run_identity(cfg, identity_keys(task), record.get("run_id"))
    keeper = CheckpointKeeper(
        trainer.checkpoint, directory, cfg.checkpoint.max_to_keep, False, identity
    )
    step = keeper.restore_latest()
    if step is None and which == "best":
        raise RunError(
            f"run_dir={cfg.run_dir}: no best checkpoint; train with checkpoint.best_metric "
            "(e.g. eval_loss) to keep one"
        )
    if step is None:
        raise RunError(f"run_dir={cfg.run_dir}: no checkpoint to restore; train first")
    trainer.use_averaged_weights()  # with optimizer.ema_decay: the averages are the model
    return cfg, cluster, trainer, source, step


def evaluate(cfg: Config) -> dict:
    """Held-out metrics of the newest checkpoint; also written to run_dir/eval.json."""
    import tensorflow as tf

    from .errors import RunError
    from .loop.controller import damaged_data
    from .loop.run_dir import write_json

    cfg, _, trainer, source, step = restore_run(cfg)
    held_out = trainer.held_out(source.eval_dataset(cfg.eval.batch_size))
    try:
        values = trainer.evaluate(*held_out)
    except tf.errors.DataLossError as error:  # a file changed after the start's checks
        raise RunError(f"{damaged_data(error)}: restore it or prepare the data again") from None
    result = {
        "step": step,
        "checkpoint": cfg.checkpoint.which,
        **values,
        "num_examples": source.num_eval_examples,
    }
    write_json(os.path.join(cfg.run_dir, "eval.json"), result)
    print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    return run(
        f"{__package__}.evaluate",
        evaluate,
        argv,
        keys=("run_dir", "checkpoint.which", "distribute", "eval.batch_size"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
