"""Every storage failure is one line naming the file and the real cause, from every writer; what
was written before stays whole.

The failures are real: a file where a directory belongs, a link to nothing, an over-long name, a
directory where a file belongs, and a full disk as a file size limit (`RLIMIT_FSIZE`, with
SIGXFSZ ignored a write past it fails with EFBIG, as a full disk fails with ENOSPC; the limit is
lifted again). A tiny tmpfs, where the tests may mount one, tells no space from no inodes.
"""

import contextlib
import errno
import json
import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest
import tensorflow as tf
from tensorboard.compat.proto import event_pb2

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.export import export
from {{ cookiecutter.package_name }}.loop import checkpoints
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import EventFile
from {{ cookiecutter.package_name }}.loop.run_dir import prepare_run_dir
from {{ cookiecutter.package_name }}.plot import plot_curves
from {{ cookiecutter.package_name }}.shards import write_shards
from {{ cookiecutter.package_name }}.storage import StorageError, storage_cause
from {{ cookiecutter.package_name }}.sweep import write_summary
from {{ cookiecutter.package_name }}.tasks.base import make_task

TOO_BIG = os.strerror(errno.EFBIG)


@contextlib.contextmanager
def file_size_limit(num_bytes: int):
    """No file of this process grows past `num_bytes` within the block: a full disk, undone."""
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (num_bytes, previous_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)


def failure(action) -> BaseException:
    try:
        action()
    except (OSError, tf.errors.OpError) as error:
        return error
    raise AssertionError("the write did not fail")


def test_each_cause_is_named_from_a_real_failure(tmp_path):
    (tmp_path / "file").write_text("")
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    (tmp_path / "folder").mkdir()
    long_name = str(tmp_path / ("n" * 300))
    cases = {
        str(tmp_path / "file" / "x"): f"Not a directory: {tmp_path / 'file'} is a file, not a "
        "directory",
        str(tmp_path / "link" / "x"): f"No such file or directory: {tmp_path / 'link'} is a "
        f"link to {tmp_path / 'nowhere'}, which does not exist",
        long_name: "File name too long: a name of 300 bytes (nnnnnnnnnnnnnnnn...), longer than "
        "the 255 this file system allows",
        str(tmp_path / "folder"): "Is a directory",
    }
    for path, cause in cases.items():
        assert storage_cause(failure(lambda p=path: Path(p).write_text("")), path) == cause
    # TensorFlow's writers: the errno's text is in the message, or the path says it
    path = str(tmp_path / "file" / "ckpt")
    said = failure(lambda: tf.io.write_file(path, b"x"))
    assert storage_cause(said, path) == cases[str(tmp_path / "file" / "x")].replace("x", "ckpt")
    lost = tf.errors.UnknownError(None, None, "Graph execution error:\n\n")  # nothing said
    assert storage_cause(lost, path) == f"{tmp_path / 'file'} is a file, not a directory"
    with file_size_limit(1000):
        error = failure(lambda: (tmp_path / "big").write_bytes(b"x" * 2000))
    assert storage_cause(error, str(tmp_path / "big")).startswith(f"{TOO_BIG} (a file size limit")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs with 16 inodes, where the tests may mount one (root in a container)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=16", "tmpfs", str(mount_point)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_no_space_and_no_inodes_are_told_apart(tiny_disk):
    error = failure(lambda: (tiny_disk / "big").write_bytes(b"x" * 2**20))
    assert storage_cause(error, str(tiny_disk / "big")) == "No space left on device (0 bytes free)"
    (tiny_disk / "big").unlink()
    made = 0
    with pytest.raises(OSError) as raised:
        while True:
            (tiny_disk / str(made)).touch()
            made += 1
    cause = storage_cause(raised.value, str(tiny_disk / str(made)))
    assert cause.startswith("No space left on device: no inodes left (") and "free, but" in cause


def test_a_checkpoints_directory_replaced_by_a_file_mid_run_is_named_and_the_run_resumes(
    make_config, tmp_path
):
    directory = tmp_path / "run" / "checkpoints"
    real_save = checkpoints.CheckpointKeeper.save

    def replaced_at_40(keeper, step):
        if step == 40 and keeper.directory == str(directory):
            os.rename(directory, tmp_path / "kept")
            directory.write_text("")
        return real_save(keeper, step)

    checkpoints.CheckpointKeeper.save = replaced_at_40
    try:
        with pytest.raises(RunError) as raised:
            train_and_evaluate(make_config())
    finally:
        checkpoints.CheckpointKeeper.save = real_save
    assert str(raised.value) == (
        f"could not save {directory}/ckpt-40 (Not a directory: {directory} is a file, not a "
        "directory); the latest checkpoint is still ckpt-20: fix that and run the same command"
    )
    with pytest.raises(RunError) as raised:  # the next run says so before it trains
        train_and_evaluate(make_config())
    assert str(raised.value) == f"{directory}: is a file, not a directory; move it away " + (
        "(checkpoints go there)"
    )
    directory.unlink()
    os.rename(tmp_path / "kept", directory)
    assert train_and_evaluate(make_config())["step"] == 40


def test_a_full_disk_while_logging_names_the_file_and_the_newest_checkpoint_then_resumes(
    make_config, tmp_path
):
    train_and_evaluate(make_config("train.steps=20"))
    metrics = tmp_path / "run" / "metrics.jsonl"
    with open(metrics, "a", encoding="utf-8") as file:  # a long history, kept on resume
        file.write('{"step": 20, "note": "padding"}\n' * 20000)
    size = metrics.stat().st_size
    with file_size_limit(size + 100), pytest.raises(RunError) as raised:
        train_and_evaluate(make_config())
    assert str(raised.value).startswith(f"{metrics}: {TOO_BIG} (a file size limit")
    assert str(raised.value).endswith(
        "; the newest checkpoint is ckpt-20: fix that and run the same command to resume"
    )
    assert train_and_evaluate(make_config())["step"] == 40


def test_an_event_file_that_cannot_grow_names_itself(tmp_path):
    events = EventFile(str(tmp_path / "tensorboard"))
    big = event_pb2.Event(step=1, file_version="x" * 5000)
    with file_size_limit(2000), pytest.raises(StorageError) as raised:
        events.add_event(big)
    assert str(raised.value).startswith(f"{events.path}: {TOO_BIG}")
    events.close()  # the failure was said once; closing does not say it again


def test_a_full_disk_during_export_prepare_and_plot_is_one_line_and_keeps_what_was_there(
    make_config, tmp_path
):
    cfg = make_config("train.steps=20")
    train_and_evaluate(cfg)
    path = export(cfg)
    before = {name: os.path.getmtime(os.path.join(path, name)) for name in os.listdir(path)}
    with file_size_limit(1000), pytest.raises(RunError) as raised:
        export(cfg)
    assert str(raised.value).startswith(f"could not export to {path} ({TOO_BIG}")
    assert str(raised.value).endswith("the previous export, if any, is unchanged")
    assert {n: os.path.getmtime(os.path.join(path, n)) for n in os.listdir(path)} == before
    assert not [name for name in os.listdir(cfg.run_dir) if name.startswith(".export")]

    arrays = make_task(cfg).arrays()
    shards = tmp_path / "shards"
    with file_size_limit(1000), pytest.raises(RunError) as raised:
        write_shards(arrays, str(shards), 2, "task=regression", 0)
    assert str(raised.value).startswith(f"data.files={shards}: could not be written ({TOO_BIG}")
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no shards, no staging

    with file_size_limit(1000), pytest.raises(StorageError) as raised:
        plot_curves(cfg.run_dir)
    assert str(raised.value).startswith(f"{cfg.run_dir}/curves.png: {TOO_BIG}")
    assert not [name for name in os.listdir(cfg.run_dir) if name.startswith("curves.tmp")]


def test_a_sweep_summary_that_cannot_be_written_names_the_file(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "final_metrics.json").write_text(json.dumps({"eval_loss": 0.5}))
    (tmp_path / "summary.csv").mkdir()  # a directory where the summary goes
    with pytest.raises(StorageError, match=f"^{tmp_path / 'summary.csv'}: Is a directory$"):
        write_summary(str(tmp_path))


def test_a_sweep_directory_that_cannot_be_made_is_one_line_before_any_job(tmp_path, capsys):
    from {{ cookiecutter.package_name }}.cli import run

    (tmp_path / "file").write_text("")
    ran = []
    sweep = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'file' / 'sweep'}"]
    assert run("train", ran.append, sweep) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: hydra.sweep.dir={tmp_path / 'file' / 'sweep'}: not writable (Not a directory: "
        f"{tmp_path / 'file'} is a file, not a directory)"
    )
    assert ran == []


def test_a_run_dir_that_is_a_link_to_nothing_or_too_long_is_refused_before_anything_is_written(
    tmp_path,
):
    os.symlink(tmp_path / "gone", tmp_path / "link")
    with pytest.raises(RunError, match=f"^run_dir={tmp_path / 'link'}: is a link to nothing;"):
        prepare_run_dir(str(tmp_path / "link"))
    deep = tmp_path / "/".join(["d" * 200] * 20)  # 4,000 characters: below the 4,096 allowed,
    with pytest.raises(RunError) as raised:  # but not with what a run writes below it
        prepare_run_dir(str(deep))
    said = str(raised.value)
    assert "too long for its file system (a path of" in said and "allows 4096 per path" in said
    assert said.endswith("choose a shorter run_dir") and len(said) < 300
    assert sorted(os.listdir(tmp_path)) == ["link"]
    with pytest.raises(RunError, match="a name of 300 bytes"):
        prepare_run_dir(str(tmp_path / ("n" * 300)))
    assert sorted(os.listdir(tmp_path)) == ["link"]
