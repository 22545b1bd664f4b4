"""Pictures and TensorBoard, read back by their real readers."""

import json

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator

from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.loop.logs import read_metrics
from {{ cookiecutter.package_name }}.plot import panels, plot_curves


def test_curves_png_decodes_as_an_image(make_config, tmp_path):
    train_and_evaluate(make_config())
    path = plot_curves(str(tmp_path / "run"))
    image = tf.io.decode_png(tf.io.read_file(path))
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert len(set(image.numpy().reshape(-1, image.shape[-1])[::97].tobytes())) > 1


def test_tensorboard_loader_reads_the_loss_curve(make_config, tmp_path):
    train_and_evaluate(make_config())
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "train"))
    events.Reload()
    steps = [event.step for event in events.Tensors("loss")]
    assert steps == [10, 20, 30, 40]
    values = [float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors("loss")]
    assert values[-1] < values[0]


def test_tensorboard_holds_every_value_of_metrics_jsonl_at_its_step(make_config, tmp_path):
    train_and_evaluate(make_config("eval.every_steps=20"))
    shown = {}
    for split, prefix in (("train", ""), ("eval", "eval_")):
        events = EventAccumulator(
            str(tmp_path / "run" / "tensorboard" / split), size_guidance={TENSORS: 0}
        )
        events.Reload()
        for tag in events.Tags()["tensors"]:
            for event in events.Tensors(tag):
                shown[(event.step, prefix + tag)] = tf.make_ndarray(event.tensor_proto)
    logged = {
        (record["step"], key): np.float32(value)
        for record in read_metrics(str(tmp_path / "run"))
        for key, value in record.items()
        if key != "step" and isinstance(value, float)
    }
    assert {"eval_loss", "grad_norm", "steps_per_sec"} <= {key for _, key in logged}
    assert shown == logged


def test_every_logged_quantity_gets_a_panel_with_its_held_out_curve():
    records = [
        {"step": 10, "loss": 1.0, "accuracy": 0.5, "grad_norm": 2.0, "learning_rate": 0.1},
        {"step": 10, "recall": 0.4, "eval_loss": 1.1, "eval_accuracy": 0.4, "eval_only": 3.0},
        {"step": 20, "steps_per_sec": 900.0},
    ]
    assert panels(records) == [
        ("loss", ["loss", "eval_loss"]),
        ("accuracy", ["accuracy", "eval_accuracy"]),
        ("grad_norm", ["grad_norm"]),
        ("recall", ["recall"]),
        ("eval_only", ["eval_only"]),
    ]


def test_a_line_cut_short_by_a_kill_does_not_stop_the_plot(make_config, tmp_path):
    train_and_evaluate(make_config())
    with open(tmp_path / "run" / "metrics.jsonl", "a", encoding="utf-8") as file:
        file.write('{"step": 50, "lo')
    image = tf.io.decode_png(tf.io.read_file(plot_curves(str(tmp_path / "run"))))
    assert image.shape[0] > 300


def test_a_picture_that_cannot_be_written_is_one_line_naming_the_path(
    make_config, tmp_path, capsys
):
    from {{ cookiecutter.package_name }}.plot import main

    train_and_evaluate(make_config())
    (tmp_path / "run" / "curves.png").mkdir()  # a directory where the picture goes
    assert main([f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "curves.png" in err and "\n" not in err, err


def test_plot_draws_without_importing_tensorflow(tmp_path):
    # Reading a JSONL file and drawing it once cost 9 s of TensorFlow start-up.
    import json

    from .conftest import python_output

    records = [{"step": s, "loss": 1.0 / s, "eval_loss": 2.0 / s} for s in (10, 20, 30)]
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (tmp_path / "metrics.jsonl").write_text(lines)
    out = python_output(
        "import sys\nfrom {{ cookiecutter.package_name }}.plot import main\n"
        f"code = main(['run_dir={tmp_path}'])\n"
        "print(code, 'tensorflow' in sys.modules)\n"
    )
    assert out.splitlines() == [f"wrote {tmp_path / 'curves.png'}", "0 False"]


def test_a_learning_rate_gets_a_panel_only_when_it_changes_and_the_title_says_the_constant():
    from {{ cookiecutter.package_name }}.plot import _title

    constant = [{"step": s, "loss": 1.0 / s, "learning_rate": 0.002} for s in (1, 2, 3)]
    assert [title for title, _ in panels(constant)] == ["loss"]
    assert _title("runs/a", constant) == "a, learning rate 0.002 throughout"
    changing = [{"step": s, "loss": 1.0 / s, "learning_rate": 0.1 * s} for s in (1, 2, 3)]
    assert [title for title, _ in panels(changing)] == ["loss", "learning_rate"]


def test_the_curves_name_each_loss_and_mark_the_best_checkpoint(make_config, tmp_path):
    import matplotlib.pyplot as plt

    cfg = make_config("checkpoint.best_metric=eval_loss", "eval.every_steps=10")
    train_and_evaluate(cfg)
    figures = []
    close = plt.close
    plt.close = lambda figure=None: figures.append(figure)  # keep the figure to read it back
    try:
        plot_curves(cfg.run_dir)
    finally:
        plt.close = close
    loss = next(axis for axis in figures[0].axes if axis.get_title() == "loss")
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels[:2] == [  # the regressor logs its own reconstruction_loss
        "training objective (training=True; + the model's own reconstruction_loss)",
        "held-out loss (training=False, the task's loss alone)",
    ]
    best = json.loads((tmp_path / "run" / "checkpoints" / "best" / "best.json").read_text())
    assert labels[2] == f"best checkpoint (step {best['step']})"
    assert figures[0]._suptitle.get_text().startswith("run, task=regression")
    close(figures[0])


def test_the_legend_claims_no_own_losses_for_a_model_that_logs_none():
    # The digits classifier logs accuracy (with its held-out twin) and no loss of its own;
    # each output's loss of a two-headed model has its held-out twin too.
    from {{ cookiecutter.package_name }}.plot import labels

    digits = [{"step": 1, "loss": 2.3, "accuracy": 0.1, "eval_loss": 2.2, "eval_accuracy": 0.1}]
    assert labels(digits)["loss"] == "training loss (training=True)"
    heads = [{"step": 1, "loss": 1.0, "next_loss": 0.4, "eval_loss": 1.1, "eval_next_loss": 0.5}]
    assert labels(heads)["loss"] == "training loss (training=True)"
