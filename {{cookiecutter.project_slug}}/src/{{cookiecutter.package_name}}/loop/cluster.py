"""Creates the tf.distribute strategy a config asks for and describes the cluster it runs on.

Every strategy goes through the same loop. `none` is TensorFlow's default strategy (one device),
so the loop has no single-device branch: `strategy.run`, `strategy.reduce` and distributed
datasets behave the same everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass

import tensorflow as tf

from ..config import DistributeConfig, flat
from ..errors import STOP_SIGNALS, RunError


@dataclass(frozen=True)
class Cluster:
    strategy: tf.distribute.Strategy
    name: str
    num_replicas: int
    num_workers: int
    task_type: str | None
    task_id: int | None

    @property
    def is_chief(self) -> bool:
        """The one task that writes checkpoints, summaries and logs into run_dir."""
        if self.task_type is None:
            return True
        has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if has_chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_id == 0


def split_cpu(num_devices: int) -> list[str]:
    """Splits the first CPU into `num_devices` logical devices (before TensorFlow starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * num_devices
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:  # TensorFlow already started: fine if it has enough CPUs already
        have = len(tf.config.list_logical_devices("CPU"))
        if have < num_devices:
            raise RunError(
                f"distribute.cpu_devices={num_devices}: TensorFlow already started with {have} "
                "CPU device(s); set it before any TensorFlow op runs"
            ) from None
    return [f"/cpu:{index}" for index in range(num_devices)]


def make_cluster(cfg: DistributeConfig, precision: str | None = None) -> Cluster:
    """Returns the strategy for `cfg.strategy` with its replica and worker counts.

    On a machine with GPUs (or a CUDA build of TensorFlow that finds none) it prints one line:
    what TensorFlow found and what the run uses of it (`gpu_line`).
    """
    if cfg.strategy == "none":
        strategy = tf.distribute.get_strategy()
    elif cfg.strategy == "mirrored":
        devices = split_cpu(cfg.cpu_devices) if cfg.cpu_devices else None
        # Logical CPUs sum gradients on one device: with the default collective all-reduce a
        # second MirroredStrategy in one process (a test session, a notebook) reused the first
        # one's collective instance keys and failed with "Shape mismatch in the collective
        # instance 100" (tensorflow/tensorflow#62790). GPUs keep TensorFlow's default (NCCL).
        cross_device_ops = tf.distribute.ReductionToOneDevice() if devices else None
        strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)
    elif cfg.strategy == "multi_worker_mirrored":
        strategy = _multi_worker(cfg.port_base, cfg.peer_timeout_seconds)
    elif cfg.strategy == "tpu":
        strategy = _tpu(cfg.tpu)
    else:  # config validation makes this unreachable
        raise RunError(f"distribute.strategy={cfg.strategy}: unknown strategy")
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) if resolver else None
    task_id = getattr(resolver, "task_id", None) if resolver else None
    num_workers = 1
    if cfg.strategy == "multi_worker_mirrored":
        num_workers = (
            len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", []))
            or 1
        )
    gpus = tf.config.list_physical_devices("GPU")
    if gpus or tf.test.is_built_with_cuda():
        details = tf.config.experimental.get_device_details
        names = [details(gpu).get("device_name", gpu.name) for gpu in gpus]
        line = gpu_line(names, cfg.strategy, strategy.num_replicas_in_sync, precision)
        print(line, file=sys.stderr)
    return Cluster(
        strategy,
        cfg.strategy,
        strategy.num_replicas_in_sync,
        num_workers,
        task_type if num_workers > 1 else None,
        task_id,
    )


def gpu_line(gpus: list[str], strategy: str, num_replicas: int, precision: str | None) -> str:
    """One line: the GPUs TensorFlow found (by name), the replicas `strategy` runs and the
    precision policy (None: a command that does not train).

    >>> gpu_line(["NVIDIA A100", "NVIDIA A100"], "mirrored", 2, "mixed_float16")
    'GPU: 2 found (NVIDIA A100 x2); distribute=mirrored: 2 replicas; precision=mixed_float16'
    >>> gpu_line([], "none", 1, None).split("; ")[1]
    'distribute=none: 1 replica on the CPU'
    """
    if gpus:
        kinds = ", ".join(f"{name} x{gpus.count(name)}" for name in dict.fromkeys(gpus))
        found, where = f"GPU: {len(gpus)} found ({kinds})", ""
    else:
        found = "GPU: none found (a CUDA build: see the driver, CUDA_VISIBLE_DEVICES)"
        where = " on the CPU"
    used = f"distribute={strategy}: {num_replicas} replica{'s' if num_replicas > 1 else ''}{where}"
    return "; ".join([found, used, *([f"precision={precision}"] if precision else [])])


def slurm_tf_config(port_base: int) -> str:
    """The `TF_CONFIG` of this task of a Slurm job step (`srun`), from TensorFlow's
    `SlurmClusterResolver`: every task of the step is a worker, on its node's host name, at port
    `port_base` + its index on that node."""
    import shutil

    resolve = tf.distribute.cluster_resolver.SlurmClusterResolver
    try:
        if "CUDA_VISIBLE_DEVICES" in os.environ or shutil.which("nvidia-smi"):
            resolver = resolve(port_base=port_base)  # each task gets its share of the GPUs
        else:
            # The resolver lists a task only with a GPU of its own (on 0 GPUs: none, or a
            # zero range step). On CPUs: one stand-in GPU per task, and CUDA_VISIBLE_DEVICES
            # left alone.
            per_node = os.environ.get("SLURM_STEP_TASKS_PER_NODE", "1")
            most = max(int(part.split("(")[0]) for part in per_node.split(","))
            resolver = resolve(
                port_base=port_base, gpus_per_node=most, gpus_per_task=1, auto_set_gpu=False
            )
        cluster = resolver.cluster_spec().as_dict()
        task_type, task_id = resolver.get_task_info()
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunError(f"Slurm job step: cannot describe the cluster ({error})") from None
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": task_id}})


def _multi_worker(port_base: int, timeout: int) -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw and int(os.environ.get("SLURM_STEP_NUM_TASKS", "0")) > 1:
        # Inside `srun` with several tasks: the cluster is the job step's (deploy/slurm.sbatch).
        raw = os.environ["TF_CONFIG"] = slurm_tf_config(port_base)
    if raw:
        check_tf_config(raw)
        rendezvous(json.loads(raw), timeout)
    # A peer that dies later aborts the collectives in flight: TensorFlow checks that every
    # peer is alive every `_check_health_interval` seconds (30 by default), a class attribute.
    from tensorflow.python.distribute.collective_all_reduce_strategy import (
        CollectiveAllReduceExtended,
    )

    CollectiveAllReduceExtended._check_health_interval = min(timeout, 10)
    # Every peer answered a moment ago; one that dies before TensorFlow meets it would still
    # hang the wait (which holds Python's lock, so no thread of ours runs), hence a watchdog
    # process. TensorFlow also takes SIGTERM for itself there (its preemption notifier): the
    # handlers from before are put back.
    stops = [getattr(signal, name) for name in STOP_SIGNALS]
    handlers = {signum: signal.getsignal(signum) for signum in stops}
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(timeout)],
        stdin=subprocess.PIPE,
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.stdin.close()
        watchdog.wait()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)


# Ends the process `argv[1]` in one line unless its stdin closes within `argv[2]` seconds.
WATCHDOG = """
import os, select, signal, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
if not select.select([sys.stdin], [], [], float(sys.argv[2]))[0]:
    print(f"error: the cluster did not form within distribute.peer_timeout_seconds={sys.argv[2]}"
          ": a peer stopped answering; start every worker again", file=sys.stderr, flush=True)
    os.kill(int(sys.argv[1]), signal.SIGKILL)
"""


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


def check_tf_config(raw: str) -> None:
    """Refuses, in one line, a `TF_CONFIG` that TensorFlow would meet with a traceback or a
    hang: not JSON with `cluster` and `task`, a task type the cluster lacks, an index outside
    its list, an address that is not `host:port`, or one address given twice.

    >>> check_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
    ...     '"index": 1}}')
    """
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], task["index"]
        jobs = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunError(
            f"TF_CONFIG: not JSON with 'cluster' and 'task' keys, received {raw[:120]!r}"
        ) from None
    if kind not in jobs:
        raise RunError(f"TF_CONFIG: task type {kind!r} is not in the cluster {sorted(jobs)}")
    if not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise RunError(
            f"TF_CONFIG: task index {index!r} is outside the {len(jobs[kind])} {kind} "
            f"addresses (0 to {len(jobs[kind]) - 1})"
        )
    seen = set()
    for name, addresses in jobs.items():
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit():
                raise RunError(f"TF_CONFIG: {name} address {address!r} is not host:port")
            if address in seen:
                raise RunError(
                    f"TF_CONFIG: {address} is given twice; each task needs its own address"
                )
            seen.add(address)


def _tpu(name: str) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # the resolver raises several types when no TPU is reachable
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RunError(
            f"distribute=tpu: no TPU found on this machine ({first_line}); use "
            "distribute=none or distribute=mirrored here"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


# Settings each worker may hold for itself: its own paths (mounts differ between machines), its
# port, whether it profiles, its thread pools. Every other setting must be the same on every
# worker.
PER_WORKER_KEYS = (
    "run_dir",
    "data.path",
    "data.files",
    "distribute.port_base",
    "profile.",
    "threads.",
)
SHOWN_PER_WORKER_KEYS = "run_dir, data.path, data.files, distribute.port_base, profile.*, threads.*"


def settings_of(cfg) -> list[tuple[str, object]]:
    """`[(dotted key, value)]` of every setting of `cfg` the workers must agree on."""
    return [
        (key, value)
        for key, value in flat(cfg).items()
        if not any(key == p or key.startswith(p) for p in PER_WORKER_KEYS)
    ]


def agree(cluster: Cluster, items: list[tuple[str, object]], what: str) -> None:
    """Every worker of `cluster` holds the same `items` (`[(name, value)]`), or every worker
    raises RunError naming the first that differs, before anything trains.

    Workers that differ in batch size, learning rate or steps would otherwise train on with
    different weights or wait for each other forever. One all-gather of a checksum per item.
    """
    if cluster.num_workers <= 1:
        return
    sums = [zlib.crc32(f"{key}={value!r}".encode()) for key, value in items] + [len(items)]
    gathered = _all_gather(cluster.strategy)(tf.constant(sums, tf.int64))
    rows = tf.reshape(gathered, [-1, len(sums)]).numpy()
    differs = [index for index in range(len(sums)) if len(set(rows[:, index])) > 1]
    if not differs:
        return
    if differs[0] == len(items):
        raise RunError(f"the workers disagree on {what}: they run different versions of the code")
    key, value = items[differs[0]]
    raise RunError(
        f"the workers disagree on {what}: {key} (this worker: {value!r}); start every worker "
        f"with the same settings (only {SHOWN_PER_WORKER_KEYS} may differ)"
    )


def stop_code(cluster: Cluster, code: int | None) -> int | None:
    """The exit code of a stop signal received by any worker (the highest), else None.

    Every worker calls it at the same step boundary, so that all stop (and save) at the same
    step: a worker that stopped alone would leave the others waiting in their next all-reduce.
    One all-gather of one number per boundary, on several workers only.
    """
    if cluster.num_workers <= 1:
        return code
    highest = int(tf.reduce_max(_all_gather(cluster.strategy)(tf.constant([code or 0], tf.int64))))
    return highest or None


@functools.cache
def _all_gather(strategy: tf.distribute.Strategy):
    """Every worker's int64 vector, concatenated: one compiled function per strategy (run
    eagerly, each call warned of its overhead and traced anew)."""

    @tf.function(reduce_retracing=True)
    def gather(local):
        return strategy.gather(strategy.run(tf.identity, args=(local,)), axis=0)

    return gather
