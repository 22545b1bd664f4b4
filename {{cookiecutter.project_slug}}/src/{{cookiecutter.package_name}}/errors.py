"""Errors a user can fix; the entry points print their message as one line, never a traceback.

The bottom of the package: it imports nothing of it, and every module may import it.
"""

__all__ = [
    "ConfigError",
    "RunError",
    "Diverged",
    "AlreadyDone",
    "Interrupted",
    "Stop",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_SIGTERM",
    "EXIT_SIGINT",
    "STOP_SIGNALS",
    "signal_name",
]


class ConfigError(ValueError):
    """A configuration value that cannot run; the message is one line naming the key."""


# Exit codes, documented in the README ("What a run guarantees").
EXIT_USAGE = 2  # a bad config value, a missing data file, an unusable run_dir, no TPU...
EXIT_DIVERGED = 3  # a non-finite loss or weight; the last good checkpoint is kept
EXIT_SIGTERM = 143  # stopped by SIGTERM after saving a checkpoint of the current step
EXIT_SIGINT = 130  # stopped by Ctrl-C after saving a checkpoint of the current step
# Every signal a terminal or a scheduler sends to stop a job: each saves a checkpoint of the
# current step and exits with 128 + its number, as a shell reports a process it ended (SIGHUP:
# the ssh session closed, 129; SIGUSR1: Slurm's `--signal=USR1@<seconds>` warning, 138).
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")


def signal_name(exit_code: int) -> str:
    """How messages name the signal behind `exit_code` (`Ctrl-C` for SIGINT)."""
    import signal

    name = signal.Signals(exit_code - 128).name
    return "Ctrl-C" if name == "SIGINT" else name


class RunError(RuntimeError):
    """A run cannot start or go on for a reason the user can act on (one line)."""


class AlreadyDone(RuntimeError):
    """The run is already at `train.steps`: nothing to train, nothing rewritten (exit 0)."""


class Interrupted(RuntimeError):
    """A stop signal outside the training loop: before training started (nothing was saved),
    or after it ended (`saved` says what is on disk)."""

    def __init__(self, exit_code: int, saved: str = ""):
        super().__init__("interrupted")
        self.exit_code, self.saved = exit_code, saved


class Diverged(RuntimeError):
    """Training produced a non-finite quantity; names the step and the quantity."""


class Stop(Exception):
    """Raised by the loop after a checkpoint was saved because a signal asked the run to stop."""

    def __init__(self, exit_code: int, step: int):
        super().__init__(f"stopped at step {step}")
        self.exit_code, self.step = exit_code, step
