"""Errors a user can fix; the entry points print their message as one line, never a traceback."""

from .config import ConfigError

__all__ = [
    "ConfigError",
    "RunError",
    "Diverged",
    "AlreadyDone",
    "Interrupted",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_SIGTERM",
    "EXIT_SIGINT",
]

# Exit codes, documented in the README ("What a run guarantees").
EXIT_USAGE = 2  # a bad config value, a missing data file, an unusable run_dir, no TPU...
EXIT_DIVERGED = 3  # a non-finite loss or weight; the last good checkpoint is kept
EXIT_SIGTERM = 143  # stopped by SIGTERM after saving a checkpoint of the current step
EXIT_SIGINT = 130  # stopped by Ctrl-C after saving a checkpoint of the current step


class RunError(RuntimeError):
    """A run cannot start or go on for a reason the user can act on (one line)."""


class AlreadyDone(RuntimeError):
    """The run is already at `train.steps`: nothing to train, nothing rewritten (exit 0)."""


class Interrupted(RuntimeError):
    """SIGTERM or Ctrl-C before training started: nothing was saved."""

    def __init__(self, exit_code: int):
        super().__init__("interrupted")
        self.exit_code = exit_code


class Diverged(RuntimeError):
    """Training produced a non-finite quantity; names the step and the quantity."""
