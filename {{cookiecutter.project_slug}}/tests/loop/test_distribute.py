"""One loop for every strategy: replicas agree with one device; bad setups fail in one line."""

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.launch import free_ports, tf_config
from {{ cookiecutter.package_name }}.loop import watchdog
from {{ cookiecutter.package_name }}.loop.cluster import make_cluster
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.rendezvous import rendezvous

from ..conftest import noise_free
from .test_controller import weights_at

SHORT = ("train.steps=20", "checkpoint.every_steps=20")


def test_two_replicas_match_one_device_and_run_json_records_them(make_config, tmp_path, task):
    one, two = tmp_path / "one", tmp_path / "two"
    quiet = (*SHORT, *noise_free(task))
    train_and_evaluate(make_config(*quiet, run_dir=one, task=task))
    result = train_and_evaluate(
        make_config(
            *quiet, "distribute=mirrored", "distribute.cpu_devices=2", run_dir=two, task=task
        )
    )
    a, b = weights_at(one, 20), weights_at(two, 20)
    assert a.keys() == b.keys()
    # 20 Adam steps on sums taken in another order: rounding moves an element by up to ~1e-3 of
    # itself (a VAE's KL, a mean per replica, did 2.4e-4). A wrong average is far outside: a
    # doubled gradient doubles Adam's first moment and quadruples its second, although Adam's
    # scale-free update barely moves the weights (one SGD step, which it doubles, is compared
    # in test_trainer.py).
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-5, err_msg=name)
    assert result["step"] == 20
    run = json.loads((two / "run.json").read_text())
    assert (run["strategy"], run["num_replicas"], run["num_workers"]) == ("mirrored", 2, 1)
    assert run["per_replica_batch_size"] == 16


def test_global_batch_not_divisible_by_replicas_is_refused(make_config):
    cfg = make_config("train.batch_size=33", "distribute=mirrored", "distribute.cpu_devices=2")
    with pytest.raises(RunError, match="train.batch_size=33: not divisible by the 2 replicas"):
        train_and_evaluate(cfg)


def test_tpu_on_a_machine_without_one_fails_in_one_line(make_config):
    with pytest.raises(RunError, match="distribute=tpu: no TPU found") as error:
        make_cluster(make_config("distribute=tpu").distribute)
    assert "\n" not in str(error.value)


def test_on_gpus_one_line_names_them_the_replicas_and_the_precision(
    make_config, monkeypatch, capsys
):
    listed = tf.config.list_physical_devices
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(2)]

    def devices(kind=None):
        return gpus if kind == "GPU" else listed(kind)

    monkeypatch.setattr(tf.config, "list_physical_devices", devices)
    names = {gpus[0]: {"device_name": "NVIDIA L4"}, gpus[1]: {}}  # a device without a name
    monkeypatch.setattr(tf.config.experimental, "get_device_details", names.__getitem__)
    make_cluster(make_config().distribute, "mixed_float16")
    assert capsys.readouterr().err.splitlines() == [
        "GPU: 2 found (NVIDIA L4 x1, /physical_device:GPU:1 x1); distribute=none: 1 replica;"
        " precision=mixed_float16"
    ]


def test_without_a_gpu_a_cpu_build_prints_nothing(make_config, capsys):
    make_cluster(make_config().distribute, "float32")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        ("worker0", r"TF_CONFIG: not JSON with 'cluster' and 'task' keys, received 'worker0'"),
        ('{"cluster": {"worker": ["a:1"]}}', r"not JSON with 'cluster' and 'task' keys"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
            r"task type 'chief' is not in the cluster \['worker'\]",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
            r"task index 2 is outside the 2 worker addresses \(0 to 1\)",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}',
            r"worker address 'b' is not host:port",
        ),
        (
            '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 1}}',
            r"a:1 is given twice; each task needs its own address",
        ),
    ],
    ids=["not_json", "no_task", "unknown_type", "index_outside", "no_port", "duplicate"],
)
def test_a_malformed_tf_config_is_one_line_before_any_cluster_forms(
    make_config, monkeypatch, tf_config, message
):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(RunError, match=message):
        make_cluster(make_config("distribute=multi_worker_mirrored").distribute)


def cluster_of(ports, index):
    return json.loads(tf_config(ports, index))


def test_rendezvous_returns_on_every_worker_once_all_have_said_hello():
    ports = free_ports(3)
    returned, errors = [], []

    def worker(index, delay):
        time.sleep(delay)  # workers start at different times
        try:
            rendezvous(cluster_of(ports, index), timeout=20)
            returned.append(index)
        except RunError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=worker, args=(i, 0.5 * i)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and sorted(returned) == [0, 1, 2]


def test_rendezvous_names_the_peers_that_never_answered_after_the_deadline():
    ports = free_ports(3)
    started = time.monotonic()
    with pytest.raises(RunError) as raised:
        rendezvous(cluster_of(ports, 0), timeout=1)
    assert str(raised.value) == (
        "the cluster did not form within distribute.peer_timeout_seconds=1: "
        f"worker 1 (localhost:{ports[1]}), worker 2 (localhost:{ports[2]}) did not answer; "
        "start every worker (each with its own task index), or give them longer"
    )
    assert time.monotonic() - started < 5


def test_a_second_worker_with_the_same_task_index_is_refused_in_one_line():
    ports = free_ports(2)
    with socket.socket() as first:  # the first worker with index 0, listening
        first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        first.bind(("", ports[0]))
        first.listen()
        with pytest.raises(RunError) as raised:
            rendezvous(cluster_of(ports, 0), timeout=5)
    assert str(raised.value) == (
        f"this worker (worker 0) cannot listen at localhost:{ports[0]} (Address already in "
        "use): is another worker started with the same task index?"
    )


def test_a_hello_that_is_not_a_peers_does_not_count():
    # A peer past the rendezvous connects with TensorFlow's own channel: bytes, not a hello.
    ports = free_ports(2)
    done = []

    def stranger():
        for _ in range(50):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("localhost", ports[0]), timeout=1) as sock,
            ):
                sock.sendall(b"\xfe\x00PRI * HTTP/2.0")
                done.append(True)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=stranger)
    thread.start()
    with pytest.raises(RunError, match="worker 1 .* did not answer"):
        rendezvous(cluster_of(ports, 0), timeout=2)
    thread.join()
    assert done == [True]


@pytest.mark.parametrize("called_off", [True, False], ids=["called_off", "not_called_off"])
def test_the_watchdog_kills_its_process_in_one_line_unless_its_stdin_closes_in_time(
    called_off, capfd
):
    guarded = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        guard = watchdog.start(guarded.pid, 1)
        if called_off:
            guard.stdin.close()
        assert guard.wait(timeout=30) == 0
        if called_off:
            assert guarded.poll() is None  # still running: the watchdog let it be
            assert capfd.readouterr().err == ""
        else:
            assert guarded.wait(timeout=30) == -signal.SIGKILL
            assert capfd.readouterr().err == (
                "error: the cluster did not form within distribute.peer_timeout_seconds=1: a peer "
                "stopped answering; start every worker again\n"
            )
    finally:
        guarded.kill()
        guarded.wait()
