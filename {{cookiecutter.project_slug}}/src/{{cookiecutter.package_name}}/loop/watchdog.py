"""Ends a process in one line unless this one's stdin closes within the given seconds.

The guard around TensorFlow's own wait for its peers (`cluster.make_cluster` under
`distribute=multi_worker_mirrored`): that wait holds Python's lock, so no thread of the waiting
process can end it. A script of the standard library only, run with `python -I` (no package,
no `PYTHONPATH`), so it starts at once: `python -I watchdog.py <pid> <seconds>`.
"""

import os
import select
import signal
import subprocess
import sys


def start(pid: int, seconds: int) -> subprocess.Popen:
    """Starts the watchdog of process `pid`; closing its stdin within `seconds` calls it off."""
    command = [sys.executable, "-I", os.path.abspath(__file__), str(pid), str(seconds)]
    return subprocess.Popen(command, stdin=subprocess.PIPE)


def main(argv: list[str]) -> None:
    pid, seconds = int(argv[1]), argv[2]
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1"):  # ended by its stdin alone
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    if not select.select([sys.stdin], [], [], float(seconds))[0]:
        print(
            f"error: the cluster did not form within distribute.peer_timeout_seconds={seconds}"
            ": a peer stopped answering; start every worker again",
            file=sys.stderr,
            flush=True,
        )
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv)
