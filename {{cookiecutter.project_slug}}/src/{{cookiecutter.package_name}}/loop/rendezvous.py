"""Waiting for every peer of a cluster before TensorFlow does, so a missing one is one line."""

from __future__ import annotations

import contextlib
import socket
import time

from ..errors import RunError

# Tasks that take part in the collectives (an evaluator or a parameter server does not).
COLLECTIVE_JOBS = ("chief", "worker")


def rendezvous(config: dict, timeout: float) -> None:
    """Returns once every peer of `config` (a TF_CONFIG) is up, or raises RunError in one line
    naming those that are not, after `timeout` seconds.

    TensorFlow waits for its peers inside the strategy's constructor, forever and holding
    Python's lock: a peer that never started hung every other worker, deaf to every signal.
    Here the wait is Python's: each worker listens on its own address (a second worker with the
    same task index cannot, and says so), says hello to every peer and hears every peer's hello;
    it stops listening only when all have reached it, so none is left waiting for another.
    Signals stop it as they stop anything else before training.
    """
    me = (config["task"]["type"], config["task"]["index"])
    if me[0] not in COLLECTIVE_JOBS:
        return
    tasks = {
        (kind, index): address
        for kind, addresses in config["cluster"].items()
        if kind in COLLECTIVE_JOBS
        for index, address in enumerate(addresses)
    }
    peers = {task: address for task, address in tasks.items() if task != me}
    listener = socket.socket(socket.AF_INET6 if ":" in _host(tasks[me]) else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with listener:
        try:
            listener.bind(("", int(tasks[me].rpartition(":")[2])))
        except OSError as error:
            raise RunError(
                f"this worker ({me[0]} {me[1]}) cannot listen at {tasks[me]} "
                f"({error.strerror}): is another worker started with the same task index?"
            ) from None
        listener.listen(len(peers) + 1)
        listener.settimeout(0.2)
        reached, heard = set(), set()
        deadline = time.monotonic() + timeout
        while len(reached) < len(peers) or len(heard) < len(peers):
            if time.monotonic() > deadline:
                silent = [
                    f"{kind} {index} ({address})"
                    for (kind, index), address in peers.items()
                    if (kind, index) not in reached or (kind, index) not in heard
                ]
                raise RunError(
                    f"the cluster did not form within distribute.peer_timeout_seconds={timeout}: "
                    f"{', '.join(silent)} did not answer; start every worker (each with its own "
                    "task index), or give them longer"
                )
            for task in sorted(set(peers) - reached):
                with contextlib.suppress(OSError):
                    port = int(peers[task].rpartition(":")[2])
                    with socket.create_connection((_host(peers[task]), port), timeout=1) as peer:
                        peer.sendall(f"{me[0]} {me[1]}\n".encode())
                    reached.add(task)
            # socket.timeout is an OSError. A peer past this wait may connect too (TensorFlow's
            # own channel): only a hello counts.
            with contextlib.suppress(OSError):
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(2)
                    hello = connection.recv(64).decode(errors="replace")
                    kind, _, index = hello.strip().partition(" ")
                    if index.isdigit() and (kind, int(index)) in peers:
                        heard.add((kind, int(index)))


def _host(address: str) -> str:
    return address.rpartition(":")[0].strip("[]")
