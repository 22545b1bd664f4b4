"""What every entry point shares: config from `key=value` arguments, one-line errors, exit codes.

A user mistake prints `error: <what, the value, what is allowed>` and exits 2, before TensorFlow
is even imported when the config alone is wrong.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable

from .check import unfinished_exercise
from .config import Config, ConfigError, load_config
from .errors import (
    EXIT_DIVERGED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    AlreadyDone,
    Diverged,
    Interrupted,
    RunError,
)

USAGE = "usage: python -m {module} [key=value ...]   (keys: see README, e.g. run_dir=runs/a)"


def run(module: str, main: Callable[[Config], object], argv: list[str] | None = None) -> int:
    """Parses `argv` into a checked Config, runs `main(cfg)`, and maps failures to exit codes."""
    argv = sys.argv[1:] if argv is None else argv
    # Until the loop installs its own handlers (which save a checkpoint first), SIGTERM and
    # Ctrl-C end the command with one line instead of a traceback or a silent kill.
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        return _run(module, main, argv)
    except (KeyboardInterrupt, Interrupted) as stop:
        code = getattr(stop, "exit_code", EXIT_SIGINT)
        name = "SIGTERM" if code == EXIT_SIGTERM else "Ctrl-C"
        print(f"stopped by {name} before training started; nothing was saved", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt_on_sigterm(signum, frame):
    raise Interrupted(EXIT_SIGTERM)


def _run(module: str, main: Callable[[Config], object], argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.format(module=module))
        return 0
    try:
        cfg = load_config(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # tf.data warns about its own option plumbing under multi-worker strategies; not actionable.
    warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
    from .loop.controller import Stop  # TensorFlow is imported from here on

    try:
        main(cfg)
    except AlreadyDone as done:
        print(done, file=sys.stderr)
        return 0
    except NotImplementedError as error:
        unfinished = unfinished_exercise(error)
        if unfinished is None:
            raise
        print(f"error: {unfinished}; `make check` shows what is left", file=sys.stderr)
        return EXIT_USAGE
    except (RunError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Diverged as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except Stop as stop:
        print(
            f"stopped by signal at step {stop.step}; checkpoint ckpt-{stop.step} saved; run the "
            "same command to continue",
            file=sys.stderr,
        )
        return stop.exit_code
    return 0
