"""Creates the tf.distribute strategy a config asks for and describes the cluster it runs on.

Every strategy goes through the same loop. `none` is TensorFlow's default strategy (one device),
so the loop has no single-device branch: `strategy.run`, `strategy.reduce` and distributed
datasets behave the same everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass

import tensorflow as tf

from ..config import DistributeConfig
from ..errors import STOP_SIGNALS, RunError
from . import watchdog
from .rendezvous import rendezvous
from .tf_config import check_tf_config, slurm_tf_config


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
    process = watchdog.start(os.getpid(), timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        process.stdin.close()
        process.wait()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)


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
