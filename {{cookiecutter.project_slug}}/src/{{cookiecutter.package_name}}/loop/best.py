"""The best checkpoint by an evaluation value, and early stopping.

With `checkpoint.best_metric` set (e.g. `eval_loss`, `checkpoint.best_mode=min`), every
evaluation is compared with the best so far; a better one is saved to `checkpoints/best/`
(one checkpoint, apart from the rolling ones). `checkpoints/best/best.json` records the metric,
the best step and value, and every evaluation so far: a resumed run forgets the evaluations
after its checkpoint (a killed process may have made some) and counts patience exactly.
With `checkpoint.patience=P`, P evaluations in a row without a better value end the run.

The Model Garden's `BestCheckpointExporter` (orbit's actions, package `tf-models-official`)
does the first half of this. It is not used: its newest release (2.20.0) requires
`tensorflow~=2.20.0` (this project runs 2.21) and `tf-keras` (Keras 2) among 28 requirements
(kaggle, opencv, pycocotools...), and keeps no history for early stopping across a resume.
"""

from __future__ import annotations

import json
import math
import os

from ..errors import RunError
from .checkpoints import CheckpointKeeper
from .run_dir import write_json


class BestKeeper:
    """Tracks the best value of `settings.best_metric` and saves its checkpoint."""

    def __init__(self, checkpoint, checkpoint_dir: str, settings, start_step: int, is_chief):
        self.metric, self.mode, self.patience = (
            settings.best_metric,
            settings.best_mode,
            settings.patience,
        )
        self.directory = os.path.join(checkpoint_dir, "best")
        self.path = os.path.join(self.directory, "best.json")
        self.is_chief = is_chief
        self.keeper = CheckpointKeeper(checkpoint, self.directory, 1, is_chief)
        self.history = [
            entry for entry in self._saved_history() if entry[0] <= start_step
        ]  # [(step, value)] of the evaluations so far

    def _saved_history(self) -> list[tuple[int, float]]:
        try:
            with open(self.path, encoding="utf-8") as file:
                saved = json.load(file)
        except (FileNotFoundError, ValueError):
            return []
        if (saved.get("metric"), saved.get("mode")) != (self.metric, self.mode):
            return []  # another metric: a new best from now on
        return [(int(step), float(value)) for step, value in saved.get("history", [])]

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than

    @property
    def best(self) -> tuple[int, float] | None:
        best = None
        for step, value in self.history:
            if best is None or self._better(value, best[1]):
                best = (step, value)
        return best

    @property
    def evaluations_since_best(self) -> int:
        best = self.best
        return 0 if best is None else sum(step > best[0] for step, _ in self.history)

    @property
    def exhausted(self) -> bool:
        """Early stopping's verdict: `patience` evaluations in a row without a better value."""
        return bool(self.patience) and self.evaluations_since_best >= self.patience

    def consider(self, step: int, logs: dict) -> bool:
        """Records this evaluation; saves the checkpoint if it is the best. True if it was."""
        if self.metric not in logs:
            values = ", ".join(sorted(key for key in logs if key.startswith("eval_")))
            raise RunError(
                f"checkpoint.best_metric={self.metric}: not an evaluation value of this task; "
                f"choose one of {values}"
            )
        value = float(logs[self.metric])
        previous = self.best
        self.history.append((step, value))
        improved = math.isfinite(value) and (previous is None or self._better(value, previous[1]))
        if improved:
            self.keeper.save(step)
        if self.is_chief:
            self._record()
        return improved

    def _record(self) -> None:
        best = self.best
        os.makedirs(self.directory, exist_ok=True)
        write_json(
            self.path,
            {
                "metric": self.metric,
                "mode": self.mode,
                "step": best[0] if best else None,
                "value": best[1] if best else None,
                "history": self.history,
            },
        )

    def summary(self) -> dict:
        best = self.best
        return {} if best is None else {"best_step": best[0], f"best_{self.metric}": best[1]}
