"""The cluster a worker belongs to, from `TF_CONFIG` or from a Slurm job step, checked."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from ..errors import RunError


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
