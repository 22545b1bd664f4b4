"""Start N local workers of a multi-worker run, for trying it out and for tests.

    python -m {{ cookiecutter.package_name }}.launch --workers 2 run_dir=runs/mw train.steps=200

Each worker is `python -m {{ cookiecutter.package_name }}.train distribute=multi_worker_mirrored ...`
with its own `TF_CONFIG` naming every worker on a free localhost port, exactly as a cluster
launcher (Kubernetes' TFJob, a Slurm script) would set it. All workers share `run_dir`; only
worker 0 (the chief) writes into it. Exits with the first non-zero worker exit code, else 0.
A stop signal sent to `launch` (SIGTERM, Ctrl-C, SIGHUP, SIGUSR1) goes to every worker, which
saves and stops; no worker outlives it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def launch(num_workers: int, overrides: list[str]) -> list[subprocess.Popen]:
    """Starts the workers and returns their processes (stdout piped, stderr inherited)."""
    ports = free_ports(num_workers)
    command = [
        sys.executable,
        "-m",
        f"{__package__}.train",
        "distribute=multi_worker_mirrored",
        *overrides,
    ]
    return [
        subprocess.Popen(
            command,
            env={**os.environ, "TF_CONFIG": tf_config(ports, index)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(num_workers)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="number of local workers")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, received {args.workers}")
    processes = launch(args.workers, args.overrides)

    def forward(signum, frame):  # each worker saves and stops on its own signal handler
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"):
        signal.signal(getattr(signal, name), forward)
    codes = []
    try:
        for index, process in enumerate(processes):
            out, _ = process.communicate()
            for line in out.splitlines():
                print(f"[worker {index}] {line}")
            codes.append(process.returncode)
    finally:  # never leave a worker behind (it would hold the run_dir lock)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    raise SystemExit(main())
