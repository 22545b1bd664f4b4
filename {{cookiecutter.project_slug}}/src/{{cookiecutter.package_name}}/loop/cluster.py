"""Creates the tf.distribute strategy a config asks for and describes the cluster it runs on.

Every strategy goes through the same loop. `none` is TensorFlow's default strategy (one device),
so the loop has no single-device branch: `strategy.run`, `strategy.reduce` and distributed
datasets behave the same everywhere.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass

import tensorflow as tf

from ..config import DistributeConfig, flat
from ..errors import RunError


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


def make_cluster(cfg: DistributeConfig) -> Cluster:
    """Returns the strategy for `cfg.strategy` with its replica and worker counts."""
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
        strategy = _multi_worker(cfg.port_base)
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
    return Cluster(
        strategy,
        cfg.strategy,
        strategy.num_replicas_in_sync,
        num_workers,
        task_type if num_workers > 1 else None,
        task_id,
    )


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


def _multi_worker(port_base: int) -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw and int(os.environ.get("SLURM_STEP_NUM_TASKS", "0")) > 1:
        # Inside `srun` with several tasks: the cluster is the job step's (deploy/slurm.sbatch).
        raw = os.environ["TF_CONFIG"] = slurm_tf_config(port_base)
    if raw:
        check_tf_config(raw)
    return tf.distribute.MultiWorkerMirroredStrategy()


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
# port, whether it profiles. Every other setting must be the same on every worker.
PER_WORKER_KEYS = ("run_dir", "data.path", "data.files", "distribute.port_base", "profile.")
SHOWN_PER_WORKER_KEYS = "run_dir, data.path, data.files, distribute.port_base, profile.*"


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
    local = tf.constant(sums, tf.int64)
    strategy = cluster.strategy
    gathered = strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0)
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
    local = tf.constant([code or 0], tf.int64)
    strategy = cluster.strategy
    highest = int(tf.reduce_max(strategy.gather(strategy.run(lambda: tf.identity(local)), 0)))
    return highest or None
