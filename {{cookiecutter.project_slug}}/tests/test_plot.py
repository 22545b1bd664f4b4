"""Pictures and TensorBoard, read back by their real readers."""

import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from {{ cookiecutter.package_name }}.loop.controller import train_and_evaluate
from {{ cookiecutter.package_name }}.plot import plot_curves


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
