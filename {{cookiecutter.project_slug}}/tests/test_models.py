import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.losses import HuberLoss
from {{ cookiecutter.package_name }}.models import ConvClassifier, ResidualRegressor

INPUTS = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)


def make_model(**kwargs):
    model = ResidualRegressor(**{"hidden_units": 16, "seed": 0, **kwargs})
    model(INPUTS[:2])  # creates every variable
    return model


def smooth_task(size, seed):
    """The default task's shape: y = sin(2 x.w) + 0.5 (x.v)^2 with standard-normal x."""
    rng = np.random.default_rng(seed)
    w, v = np.random.default_rng(1).standard_normal((2, 8)) / np.sqrt(8)
    x = rng.standard_normal((size, 8)).astype(np.float32)
    return x, (np.sin(2 * x @ w) + 0.5 * (x @ v) ** 2).astype(np.float32)[:, None]


def test_model_outputs_one_float32_prediction_per_sample():
    outputs = make_model(output_units=2)(INPUTS)
    assert tuple(outputs.shape) == (16, 2)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"


def test_add_loss_puts_one_scalar_in_model_losses():
    model = make_model(l1=0.0)
    model(INPUTS, training=True)
    model(INPUTS, training=True)  # losses are reset at every call, not accumulated
    assert len(model.losses) == 1
    assert tuple(model.losses[0].shape) == ()
    assert float(model.losses[0]) > 0


def test_model_losses_also_hold_one_l1_penalty_per_body_kernel():
    model = make_model(num_blocks=2, l1=1e-3)
    model(INPUTS)
    assert len(model.losses) == 1 + 1 + 2 * 2  # reconstruction, projection, 2 blocks x 2 layers


def test_reconstruction_tracker_reports_the_added_loss_only_in_training():
    model = make_model(l1=0.0)
    assert model.reconstruction_tracker.name == "reconstruction_loss"
    assert model.reconstruction_tracker in model.metrics
    model(INPUTS, training=True)
    added = float(model.losses[0])
    np.testing.assert_allclose(float(model.reconstruction_tracker.result()), added, rtol=1e-6)
    model(INPUTS * 10, training=False)
    np.testing.assert_allclose(float(model.reconstruction_tracker.result()), added, rtol=1e-6)


def test_reconstruction_weight_scales_the_added_loss():
    light = make_model(l1=0.0, reconstruction_weight=0.1)
    heavy = make_model(l1=0.0, reconstruction_weight=0.3)
    light(INPUTS), heavy(INPUTS)
    np.testing.assert_allclose(float(heavy.losses[0]), 3 * float(light.losses[0]), rtol=1e-5)


def test_reconstruction_loss_is_the_weighted_mean_squared_error_in_float32(mixed_bfloat16):
    model = make_model(l1=0.0, reconstruction_weight=0.25, noise_stddev=0.0)
    model(INPUTS)
    hidden = model.input_projection(INPUTS)
    for block in model.blocks:
        hidden = block(hidden)
    reconstruction = keras.ops.convert_to_numpy(
        keras.ops.cast(model.reconstruction_head(hidden), "float32")
    ).astype(np.float64)
    # The model's call casts its inputs to bfloat16 (Keras' autocast), the error is float32.
    inputs = keras.ops.convert_to_numpy(keras.ops.cast(INPUTS, "bfloat16")).astype(np.float64)
    expected = 0.25 * np.mean((reconstruction - inputs) ** 2)  # computed in float64
    assert keras.backend.standardize_dtype(model.losses[0].dtype) == "float32"
    # bfloat16 arithmetic (8 bits of mantissa) would be off by ~0.4%
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_variable_groups_cover_every_trainable_variable_exactly_once():
    model = make_model()
    groups = model.variable_groups()
    assert list(groups) == ["body", "head"]
    grouped = [id(v) for group in groups.values() for v in group]
    assert sorted(grouped) == sorted(id(v) for v in model.trainable_variables)
    assert len(set(grouped)) == len(grouped)
    head = model.output_layer.trainable_variables
    assert [id(v) for v in groups["head"]] == [id(v) for v in head]


def test_variable_groups_need_a_built_model():
    with pytest.raises(ValueError, match="build"):
        ResidualRegressor().variable_groups()


def test_noise_only_in_training_so_inference_is_deterministic():
    model = make_model(noise_stddev=0.5)
    np.testing.assert_array_equal(model(INPUTS), model(INPUTS))
    assert not np.array_equal(model(INPUTS, training=True), model(INPUTS, training=True))


def test_seed_makes_initial_predictions_reproducible():
    np.testing.assert_array_equal(make_model(seed=4)(INPUTS), make_model(seed=4)(INPUTS))
    assert not np.array_equal(make_model(seed=4)(INPUTS), make_model(seed=5)(INPUTS))


def test_reconstruction_head_kernel_is_constrained_non_negative():
    model = make_model()
    assert model.reconstruction_head.kernel.constraint is not None


def test_model_under_mixed_bfloat16_keeps_float32_variables_and_outputs(mixed_bfloat16):
    model = make_model()
    outputs = model(INPUTS, training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    assert model.input_projection.compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(model.losses[0].dtype) == "float32"
    assert all(v.dtype == "float32" for v in model.weights)


def test_model_config_round_trip():
    model = ResidualRegressor(hidden_units=8, num_blocks=3, noise_stddev=0.1, l1=0.0, seed=2)
    revived = ResidualRegressor.from_config(model.get_config())
    assert revived.get_config() == model.get_config()
    assert len(revived.blocks) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_units": 0}, "Received: hidden_units=0"),
        ({"num_blocks": -1}, "Received: num_blocks=-1"),
        ({"reconstruction_weight": -1.0}, "Received: reconstruction_weight=-1.0"),
        ({"l1": -1e-5}, "Received: l1=-1e-05"),
    ],
)
def test_model_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualRegressor(**kwargs)


def test_model_learns_the_smooth_regression_task():
    x_train, y_train = smooth_task(2048, seed=0)
    x_test, y_test = smooth_task(512, seed=1)
    keras.utils.set_random_seed(0)
    model = ResidualRegressor(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=HuberLoss())
    model.fit(x_train, y_train, batch_size=64, epochs=6, verbose=0)
    mse = float(np.mean((model.predict(x_test, verbose=0) - y_test) ** 2))
    assert mse < 0.1 * float(y_test.var())


IMAGES = np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)


def make_classifier(**kwargs):
    model = ConvClassifier(**{"filters": 4, "hidden_units": 8, "seed": 0, **kwargs})
    model(IMAGES[:2])
    return model


def test_classifier_outputs_float32_logits_per_class_under_bfloat16(mixed_bfloat16):
    model = make_classifier(num_classes=7)
    logits = model(IMAGES, training=True)
    assert tuple(logits.shape) == (6, 7)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert model.conv_1.compute_dtype == "bfloat16" and model.hidden.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)


def test_classifier_composes_noise_two_convolutions_dense_and_blocks():
    model = make_classifier(num_blocks=2, noise_stddev=0.5)
    assert model.conv_2.strides == (2, 2) and model.conv_2.filters == 8
    assert model.hidden.kernel.shape == (4 * 4 * 8, 8)  # 8x8 halved by the stride
    assert len(model.blocks) == 2
    np.testing.assert_array_equal(model(IMAGES), model(IMAGES))  # no noise in inference
    assert not np.array_equal(model(IMAGES, training=True), model(IMAGES))


def test_classifier_l1_reaches_every_dense_kernel_and_groups_split_the_head():
    model = make_classifier(l1=1e-3, num_blocks=1)
    model(IMAGES)
    assert len(model.losses) == 1 + 2  # the hidden kernel and the block's two kernels
    groups = model.variable_groups()
    assert [v.path for v in groups["head"]] == [v.path for v in model.output_layer.weights]
    assert len(groups["body"]) + len(groups["head"]) == len(model.trainable_variables)


def test_classifier_config_round_trip_and_bad_arguments():
    model = ConvClassifier(num_classes=3, filters=2, hidden_units=4, num_blocks=2, seed=5)
    assert ConvClassifier.from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        ConvClassifier(num_classes=1)
    with pytest.raises(ValueError, match="Received: filters=0"):
        ConvClassifier(filters=0)


def test_training_noise_perturbs_the_projected_features_before_the_blocks():
    # Blocks in between: the noise layer must receive the projection's output itself (after
    # the blocks, a model with num_blocks=0 cannot tell).
    from unittest import mock

    model = make_model(noise_stddev=0.5, num_blocks=2)
    seen = []
    original = model.noise.call

    def record(inputs, *args, **kwargs):
        seen.append(keras.ops.convert_to_numpy(inputs))
        return original(inputs, *args, **kwargs)

    with mock.patch.object(model.noise, "call", side_effect=record):
        model(INPUTS, training=True)
    projected = keras.ops.convert_to_numpy(model.input_projection(INPUTS))
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], projected, rtol=1e-6)


def test_training_noise_is_added_after_the_input_projection():
    # With a zero projection, noise on the raw inputs would vanish in the projection; the
    # docstring's order (projection, then noise) keeps it.
    model = make_model(noise_stddev=0.5, num_blocks=0)
    model(INPUTS)
    projection = model.input_projection
    projection.set_weights([np.zeros_like(w.numpy()) for w in projection.weights])
    noisy = [keras.ops.convert_to_numpy(model(INPUTS, training=True)) for _ in range(2)]
    assert not np.array_equal(noisy[0], noisy[1])
