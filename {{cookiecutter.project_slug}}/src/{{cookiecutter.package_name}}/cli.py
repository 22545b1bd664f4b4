"""What every entry point shares: config from `key=value` arguments, one-line errors, exit codes.

A user mistake prints `error: <what, the value, what is allowed>` and exits 2, before TensorFlow
is even imported when the config alone is wrong.

Plain `key=value` arguments go through Hydra's compose API (fast, one-line errors). Hydra's own
flags go to Hydra itself (`@hydra.main`): `--help` lists every group and key with its default,
`--cfg job` prints the composed config, `--info` describes the search path, and `-m` /
`--multirun` runs a sweep (`optimizer.learning_rate=0.001,0.003 seed=range(3)`), each job into
its own run directory under the sweep directory, followed by a summary (`sweep.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable

{% if cookiecutter.starter_kit != "none" -%}
from .check import unfinished_exercise
{% endif -%}
from .config import Config, ConfigError, check_renamed_keys, flat, load_config
from .errors import (
    EXIT_DIVERGED,
    EXIT_SIGINT,
    EXIT_USAGE,
    STOP_SIGNALS,
    AlreadyDone,
    Diverged,
    Interrupted,
    RunError,
    Stop,
    signal_name,
)

# Arguments that only Hydra's own command line understands.
HYDRA_FLAGS = ("-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info")
HYDRA_FLAG_PREFIXES = ("--cfg=", "--info=", "--package", "-p", "--resolve", "--config-")


def run(
    module: str,
    main: Callable[[Config], object],
    argv: list[str] | None = None,
    tensorflow: bool = True,
    keys: tuple[str, ...] = (),
) -> int:
    """Parses `argv` into a checked Config, runs `main(cfg)`, and maps failures to exit codes.

    `keys`: the config keys (or sections) the command reads; its `--help` lists those only.
    Without them, `--help` is Hydra's, with every key (the training command).
    """
    argv = sys.argv[1:] if argv is None else argv
    # Until the loop installs its own handlers (which save a checkpoint first), every stop
    # signal (STOP_SIGNALS) ends the command with one line instead of a traceback or a silent
    # kill; Ctrl-C is Python's own KeyboardInterrupt.
    stops = [getattr(signal, name) for name in STOP_SIGNALS if name != "SIGINT"]
    previous = {signum: signal.signal(signum, _interrupt) for signum in stops}
    try:
        if keys and any(arg in ("-h", "--help") for arg in argv):
            print(command_help(module, keys))
            return 0
        return _run(module, main, argv, tensorflow)
    except (KeyboardInterrupt, Interrupted) as stop:
        code = getattr(stop, "exit_code", EXIT_SIGINT)
        saved = getattr(stop, "saved", "") or "before training started; nothing was saved"
        print(f"stopped by {signal_name(code)} {saved}", file=sys.stderr)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def command_help(module: str, keys: tuple[str, ...]) -> str:
    """The `--help` of a command that reads only `keys`: its docstring's first paragraph and
    each key with its default.

    >>> print(command_help("json", ("run_dir", "checkpoint.which")).splitlines()[-2:])
    ['  run_dir=runs/...', '  checkpoint.which=latest']
    """
    import importlib

    doc = (importlib.import_module(module).__doc__ or "").strip().split("\n\n")[0]
    with startup_lines_hidden():  # the default task's module may import Keras at the top
        defaults = flat(load_config([]))
    lines = [f"usage: python -m {module} [key=value ...]", "", doc, "", "keys it reads:"]
    for key in keys:
        shown = {k: v for k, v in defaults.items() if k == key or k.startswith(f"{key}.")}
        lines += [f"  {k}={'' if v is None else v}" for k, v in shown.items()] or [f"  {key}"]
    return "\n".join(lines)


def _interrupt(signum, frame):
    raise Interrupted(128 + signum)


def _run(module: str, main: Callable[[Config], object], argv: list[str], tensorflow: bool) -> int:
    try:
        check_renamed_keys(argv)  # before Hydra, whose own error would not name the new key
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if any(arg in HYDRA_FLAGS or arg.startswith(HYDRA_FLAG_PREFIXES) for arg in argv):
        return _run_with_hydra(module, main, argv)
    try:
        with startup_lines_hidden():  # a task module may import Keras at the top
            cfg = load_config(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return execute(main, cfg, tensorflow)


def execute(main: Callable[[Config], object], cfg: Config, tensorflow: bool = True) -> int:
    """Runs `main(cfg)`; maps every failure a user can act on to one line and an exit code.

    `tensorflow=False` for a command that never needs it (`plot`): it starts in a second.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # tf.data warns about its own option plumbing under multi-worker strategies; not actionable.
    warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
    if tensorflow:
        refusal = address_space_refusal()
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return EXIT_USAGE
        with startup_lines_hidden():
            import tensorflow  # noqa: F401

    try:
        main(cfg)
    except AlreadyDone as done:
        print(done, file=sys.stderr)
        return 0
{%- if cookiecutter.starter_kit != "none" %}
    except NotImplementedError as error:
        unfinished = unfinished_exercise(error)
        if unfinished is None:
            raise
        print(f"error: {unfinished}; `make check` shows what is left", file=sys.stderr)
        return EXIT_USAGE
{%- endif %}
    except (RunError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # stdout's reader went away (`train ... | head -1`): as `yes` would
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as error:  # a path that cannot be written: permission, space, a file in the way
        print(f"error: {file_system_refusal(error)}", file=sys.stderr)
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


# The address space TensorFlow takes to start its runtime and thread pools: the default run
# aborted in `pthread_create` (exit 134, no checkpoint, no Python error to catch) below about
# 2.2 GB with 1 CPU and 2.4 GB with 2 (`ulimit -v`, TensorFlow 2.21, Linux x86-64); each thread
# reserves its stack and a malloc arena.
ADDRESS_SPACE_BASE = 2_100_000_000
ADDRESS_SPACE_PER_CPU = 150_000_000


def address_space_refusal(limit: int | None = None, cpus: int | None = None) -> str | None:
    """One line when the address-space limit (`ulimit -v`, RLIMIT_AS) is too low for
    TensorFlow's threads on `cpus` CPUs, else None; read from the process when not given.

    >>> address_space_refusal(1_500_000_000, cpus=2).split(";")[0]
    'the memory limit (ulimit -v) allows 1.5 GB of address space'
    >>> address_space_refusal(8_000_000_000, cpus=2) is None
    True
    """
    if limit is None:
        try:
            import resource
        except ImportError:  # Windows: no such limit
            return None
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    needed = ADDRESS_SPACE_BASE + ADDRESS_SPACE_PER_CPU * (cpus or 1)
    if limit >= needed:
        return None
    from .storage import readable_size

    return (
        f"the memory limit (ulimit -v) allows {readable_size(limit)} of address space; "
        f"TensorFlow needs about {readable_size(needed)} to start its threads on {cpus} CPUs "
        "and would abort without a checkpoint: raise it (ulimit -v unlimited), or use fewer "
        "CPUs (taskset)"
    )


# What every TensorFlow start prints on stderr, whatever TF_CPP_MIN_LOG_LEVEL says (absl's
# C++ logging in TensorFlow 2.21): not actionable, so hidden unless the user sets the level.
STARTUP_LINES = (
    "All log messages before absl::InitializeLog() is called",
    "port.cc:",
    "cpu_feature_guard.cc:",
    "To enable the following instructions:",
)
# Decided when a command starts (its module imports this one), before anything here sets it.
USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ


@contextlib.contextmanager
def startup_lines_hidden():
    """Runs the block with TensorFlow's start-up lines left out of stderr, unless the user set
    TF_CPP_MIN_LOG_LEVEL (then everything shows). TensorFlow starts inside it: when a command
    imports it, and when reading the config imports a task module that imports Keras at the
    top. Every other line the block writes to stderr is passed on when it ends."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if USER_LOG_LEVEL or "tensorflow" in sys.modules:  # started already: nothing to hide
        yield
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not any(noise in line for noise in STARTUP_LINES):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _silence_stdout() -> None:
    """Points stdout at the null device, so that Python's flush at exit does not fail again."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open until the process ends
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a test's stand-in stdout
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    sys.stdout = devnull


def file_system_refusal(error: OSError) -> str:
    """One line naming the path and the real cause of a failed file operation."""
    from .storage import storage_cause

    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    cause = storage_cause(error, paths[-1] if paths else "")
    return f"{' -> '.join(paths)}: {cause}" if paths else cause


def objective(cfg: Config) -> float:
    """What a sweep optimizes: `best_<checkpoint.best_metric>` of the run, else `eval_loss`;
    nan when there is none (Optuna counts such a trial as failed and goes on)."""
    import json

    metric = cfg.checkpoint.best_metric
    key = f"best_{metric}" if metric else "eval_loss"
    try:
        with open(os.path.join(cfg.run_dir, "final_metrics.json"), encoding="utf-8") as file:
            value = json.load(file).get(key)
    except (OSError, ValueError):
        value = None
    return float(value) if isinstance(value, (int, float)) else float("nan")


def stopped_clock() -> str | None:
    """One line when a clock a sweep reads does not move, else None: Hydra's sweeper divides by
    the time it measured (ZeroDivisionError under a frozen clock), and the default sweep
    directory is named by the wall clock, so two sweeps would share it."""
    import time

    wall, counter = time.time(), time.perf_counter()
    time.sleep(0.002)
    stopped = [
        name
        for name, before, now in (
            ("time.time", wall, time.time()),
            ("time.perf_counter", counter, time.perf_counter()),
        )
        if now <= before
    ]
    if not stopped:
        return None
    return (
        f"the clock does not move ({' and '.join(stopped)} did not advance over 2 ms): a "
        "sweep times its jobs and names its directory by it; set the system clock going (or "
        "faketime's rate) and run the sweep again"
    )


def _run_with_hydra(module: str, main: Callable[[Config], object], argv: list[str]) -> int:
    """Hands the command line to `@hydra.main`: its flags, sweeps and launchers."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .config import config_from
    from .tasks.base import shipped_tasks

    with startup_lines_hidden():  # a task module may import Keras at the top
        shipped_tasks()  # each one an option of the `task` group
    if any(arg in ("-m", "--multirun") for arg in argv):
        stopped = stopped_clock()
        if stopped:
            print(f"error: {stopped}", file=sys.stderr)
            return EXIT_USAGE
    codes = []

    @hydra.main(config_path=f"pkg://{__package__}.conf", config_name="config", version_base=None)
    def job(composed) -> float:
        """One run; returns its objective for a search sweeper (Optuna): the best value of
        `checkpoint.best_metric`, or else the final `eval_loss` (nan when the run failed)."""
        try:
            cfg = config_from(composed)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            codes.append(EXIT_USAGE)
            return float("nan")
        settings = HydraConfig.get()
        if settings.mode == RunMode.MULTIRUN:  # each job into its own directory of the sweep
            cfg.run_dir = settings.runtime.output_dir
        codes.append(execute(main, cfg))
        return objective(cfg) if codes[-1] == 0 else float("nan")

    arguments = sys.argv
    sys.argv = [module, *argv]
    try:
        job()
    except SystemExit as exit_:  # Hydra's own usage errors, --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    finally:
        sys.argv = arguments
    return max(codes, default=0)
