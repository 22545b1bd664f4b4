"""What a run guarantees about its checkpoints when things go wrong."""

import glob
import json
import logging
import os
import re
import shutil

import pytest
import tensorflow as tf

from {{ cookiecutter.package_name }}.errors import Diverged, RunError
from {{ cookiecutter.package_name }}.evaluate import evaluate
from {{ cookiecutter.package_name }}.loop.actions import Action
from {{ cookiecutter.package_name }}.loop.checkpoints import unreadable_reason
from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate


def ckpt(tmp_path, step):
    return str(tmp_path / "run" / "checkpoints" / f"ckpt-{step}")


def data_shard(prefix):
    """The first data file of a checkpoint (a save writes one per device group)."""
    return sorted(glob.glob(prefix + ".data-*"))[0]


def truncate(path):
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def test_truncated_newest_checkpoint_is_named_and_the_previous_one_used(
    make_config, tmp_path, caplog
):
    train_and_evaluate(make_config())
    truncate(data_shard(ckpt(tmp_path, 40)))
    with caplog.at_level(logging.WARNING):
        result = train_and_evaluate(make_config("train.steps=60"))
    assert "ckpt-40 is damaged" in caplog.text
    assert result["step"] == 60


def test_garbage_index_and_missing_shard_are_detected(make_config, tmp_path):
    train_and_evaluate(make_config())
    with open(ckpt(tmp_path, 40) + ".index", "wb") as file:
        file.write(b"not an index")
    os.remove(data_shard(ckpt(tmp_path, 20)))
    assert unreadable_reason(ckpt(tmp_path, 40))
    assert unreadable_reason(ckpt(tmp_path, 20))


def test_no_readable_checkpoint_stops_instead_of_starting_over(make_config, tmp_path):
    train_and_evaluate(make_config())
    for step in (20, 40):
        truncate(data_shard(ckpt(tmp_path, step)))
    with pytest.raises(RunError, match="no readable checkpoint"):
        train_and_evaluate(make_config("train.steps=60"))
    result = train_and_evaluate(make_config("train.steps=60", "checkpoint.allow_fresh_start=true"))
    assert result["step"] == 60


def test_run_dir_of_another_model_is_refused_naming_the_difference(make_config):
    train_and_evaluate(make_config("train.steps=20"))
    with pytest.raises(RunError, match=r"task\.hidden_units was 16, now 8"):
        train_and_evaluate(make_config("task.hidden_units=8"))
    with pytest.raises(RunError) as refused:  # in config terms, never a class path
        train_and_evaluate(make_config(task="image_classification"))
    assert str(refused.value).endswith(
        "holds checkpoints of task=regression, not task=image_classification; use another "
        "run_dir (e.g. run_dir=runs/image_classification) or task=regression"
    )
    # A key the task does not list as identity (the data's noise) may change on resume.
    assert train_and_evaluate(make_config("task.label_noise=0.2"))["step"] == 40


class PoisonWeights(Action):
    """At its first call, puts NaN into every model's weights: a blow-up mid-run, whatever the
    task's step computes."""

    def __init__(self, every_steps: int = 20):
        self.every_steps = every_steps

    def __call__(self, run, boundary):
        for model in run.trainer.models.values():
            for variable in model.trainable_variables:
                variable.assign(tf.fill(variable.shape, float("nan")))


def test_a_non_finite_step_stops_and_writes_no_non_finite_checkpoint(make_config, tmp_path, task):
    poison = "+actions.poison={_target_: " + f"{__name__}.PoisonWeights" + "}"
    with pytest.raises(Diverged, match=r"step 21.*not finite.*ckpt-20"):
        train_and_evaluate(make_config("checkpoint.every_steps=5", poison, task=task))
    state = tf.train.get_checkpoint_state(str(tmp_path / "run" / "checkpoints"))
    assert state.model_checkpoint_path.endswith("ckpt-20")
    assert unreadable_reason(state.model_checkpoint_path) is None  # whole and finite


def test_exploding_learning_rate_stops_and_writes_no_non_finite_checkpoint(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=20"))
    with pytest.raises(Diverged, match=r"step 2\d.*not finite.*ckpt-20"):
        train_and_evaluate(make_config("optimizer.learning_rate=1e30", "checkpoint.every_steps=5"))
    state = tf.train.get_checkpoint_state(str(tmp_path / "run" / "checkpoints"))
    assert state.model_checkpoint_path.endswith("ckpt-20")
    assert unreadable_reason(state.model_checkpoint_path) is None  # whole and finite


def test_unwritable_run_dir_is_one_clear_error(make_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    with pytest.raises(RunError, match="not writable"):
        train_and_evaluate(make_config(run_dir=blocker / "run"))
    with pytest.raises(RunError, match="file: is a file, not a directory"):
        train_and_evaluate(make_config(run_dir=blocker))


def test_resumed_run_deletes_the_files_of_checkpoints_beyond_max_to_keep(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=60", "checkpoint.max_to_keep=2"))
    train_and_evaluate(make_config("train.steps=100", "checkpoint.max_to_keep=2"))
    directory = str(tmp_path / "run" / "checkpoints")
    on_disk = {os.path.basename(p).split(".")[0] for p in glob.glob(f"{directory}/ckpt-*")}
    assert on_disk == {"ckpt-80", "ckpt-100"}
    # The pointer file is the one tf.train.CheckpointManager and latest_checkpoint read.
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(), directory, max_to_keep=2)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-80", "ckpt-100"]
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-100")


def test_evaluate_beside_a_training_that_prunes_reads_the_newer_checkpoint(
    make_config, tmp_path, caplog, monkeypatch
):
    # `evaluate` while training saved and pruned (checkpoint.max_to_keep) once ended in a
    # NotFoundError traceback: the checkpoint it was reading had been deleted.
    from {{ cookiecutter.package_name }}.config import load_config
    from {{ cookiecutter.package_name }}.evaluate import evaluate
    from {{ cookiecutter.package_name }}.loop import checkpoints

    train_and_evaluate(make_config())
    ahead = tmp_path / "ahead"  # the same run, 20 steps further: its ckpt-60
    shutil.copytree(tmp_path / "run", ahead)
    train_and_evaluate(make_config("train.steps=60", run_dir=ahead))
    read = checkpoints.unreadable_reason
    pruned = []

    def meanwhile_training_saves_60_and_prunes_40(prefix):
        if not pruned:  # a training process saves ckpt-60 and deletes ckpt-40 under our feet
            for path in glob.glob(str(ahead / "checkpoints" / "ckpt-60.*")):
                shutil.copyfile(path, tmp_path / "run" / "checkpoints" / os.path.basename(path))
            for path in glob.glob(ckpt(tmp_path, 40) + ".*"):
                os.remove(path)
            pruned.append(prefix)
        return read(prefix)

    monkeypatch.setattr(checkpoints, "unreadable_reason", meanwhile_training_saves_60_and_prunes_40)
    with caplog.at_level(logging.WARNING):
        result = evaluate(load_config([f"run_dir={tmp_path / 'run'}"]))
    assert pruned  # the newest was read while it was pruned
    assert result["step"] == 60  # not the older ckpt-20, and not "damaged"
    assert "damaged" not in caplog.text


def copy_checkpoint(source: str, target: str) -> None:
    """Copies the files of checkpoint `source` (a prefix) as checkpoint `target`."""
    for path in glob.glob(glob.escape(source) + ".*"):
        shutil.copyfile(path, target + path[len(source) :])


def test_a_checkpoint_of_another_run_of_the_same_shapes_is_refused_naming_whose_it_is(
    make_config, tmp_path
):
    train_and_evaluate(make_config("train.steps=20"))
    other = make_config("train.steps=40", run_dir=tmp_path / "other")  # same config, other run
    train_and_evaluate(other)
    reseeded = make_config("train.steps=60", "seed=1", run_dir=tmp_path / "reseeded")
    train_and_evaluate(reseeded)
    ids = {
        name: json.loads((tmp_path / name / "run.json").read_text())["run_id"]
        for name in ("run", "other")
    }
    copy_checkpoint(str(tmp_path / "other" / "checkpoints" / "ckpt-40"), ckpt(tmp_path, 40))
    expected = (
        f"{ckpt(tmp_path, 40)}: belongs to run {ids['other']}, not to this run_dir's run "
        f"{ids['run']} (run.json): copied in from another run, it is never resumed; move it "
        "away, or train into a new run_dir"
    )
    with pytest.raises(RunError) as refused:
        train_and_evaluate(make_config("train.steps=60"))
    assert str(refused.value) == expected
    with pytest.raises(RunError) as refused:  # evaluate and export restore the same way
        evaluate(make_config())
    assert str(refused.value) == expected
    for path in glob.glob(ckpt(tmp_path, 40) + ".*"):
        os.remove(path)
    copy_checkpoint(str(tmp_path / "reseeded" / "checkpoints" / "ckpt-60"), ckpt(tmp_path, 60))
    other_seed = r"ckpt-60: written with other settings: seed was 1, now 42;"
    with pytest.raises(RunError, match=other_seed):
        train_and_evaluate(make_config("train.steps=80"))


def test_a_renamed_checkpoint_is_refused_naming_the_step_it_holds(make_config, tmp_path):
    train_and_evaluate(make_config("train.steps=20"))
    for path in glob.glob(ckpt(tmp_path, 20) + ".*"):
        os.rename(path, path.replace("ckpt-20", "ckpt-30"))
    with pytest.raises(RunError) as refused:
        train_and_evaluate(make_config())
    assert str(refused.value) == (
        f"{ckpt(tmp_path, 30)}: holds step 20, not 30: a checkpoint is named by its step, so it "
        "was renamed or copied over; rename it ckpt-20 or move it away"
    )


def test_switching_weight_averages_on_is_refused_as_a_change_of_what_checkpoints_hold(
    make_config, tmp_path
):
    train_and_evaluate(make_config("train.steps=20"))
    what = (
        "optimizer.ema_decay was 0.0, now 0.99 (it changes what a checkpoint holds: the weight "
        "averages, kept when it is above 0)"
    )
    with pytest.raises(RunError, match=re.escape(f"a different config: {what}; use a new")):
        train_and_evaluate(make_config("optimizer.ema_decay=0.99"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").unlink()  # without the record, the checkpoint says it
    with pytest.raises(RunError, match=re.escape(f"ckpt-20: written with other settings: {what};")):
        train_and_evaluate(make_config("optimizer.ema_decay=0.99"))
    assert train_and_evaluate(make_config())["step"] == 40  # the same settings resume
    # and the run keeps its id, which the checkpoint carried
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] == record["run_id"]


def test_models_and_optimizers_that_differ_are_named_not_a_tensor(tmp_path):
    from {{ cookiecutter.package_name }}.loop.checkpoints import objects_that_differ

    def optimizer():
        return tf.keras.optimizers.SGD()

    written = tf.train.Checkpoint(step=tf.Variable(1), optimizer_all=optimizer())
    written.optimizer_all.build([tf.Variable(1.0)])
    path = written.write(str(tmp_path / "ckpt-1"))
    wanted = tf.train.Checkpoint(
        step=tf.Variable(1), optimizer_body=optimizer(), optimizer_head=optimizer()
    )
    assert objects_that_differ(path, wanted) == (
        "it holds optimizer_all, which this config does not make; it lacks optimizer_body, "
        "optimizer_head, which this config makes"
    )
    assert objects_that_differ(path, written) is None
