import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.testing import TestCase

from {{ cookiecutter.package_name }}.components.activations import ScaledSoftplus
from {{ cookiecutter.package_name }}.components.constraints import PositiveWeights
from {{ cookiecutter.package_name }}.components.initializers import GlorotNormalGain
from {{ cookiecutter.package_name }}.components.layers import (
    CustomDense,
    GaussianNoise,
    ResidualBlock,
    SumAndProduct,
)
from {{ cookiecutter.package_name }}.components.layers.noise import standard_normal
from {{ cookiecutter.package_name }}.components.regularizers import L1Penalty

# The configurations used by the default ResidualRegressor.
PROJECTION_KWARGS = {
    "units": 16,
    "activation": ScaledSoftplus(scale=2.0),
    "kernel_initializer": GlorotNormalGain(seed=0),
    "kernel_regularizer": L1Penalty(1e-5),
}
RECONSTRUCTION_KWARGS = {
    "units": 8,
    "kernel_initializer": GlorotNormalGain(seed=3),
    "kernel_constraint": PositiveWeights(),
}
BLOCK_KWARGS = {
    "units": 16,
    "activation": "gelu",
    "kernel_initializer": GlorotNormalGain(),
    "kernel_regularizer": L1Penalty(1e-5),
    "seed": 100,
}

# The harness fits a tiny model on a generator (and on a layer without weights): expected noise.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning"),
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights:UserWarning"),
]


@pytest.fixture
def harness():
    return TestCase()


def test_custom_dense_passes_keras_layer_harness(harness):
    harness.run_layer_test(
        CustomDense,
        init_kwargs=PROJECTION_KWARGS,
        input_shape=(2, 8),
        expected_output_shape=(2, 16),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_num_losses=1,
    )


def test_constrained_custom_dense_passes_keras_layer_harness(harness):
    harness.run_layer_test(
        CustomDense,
        init_kwargs=RECONSTRUCTION_KWARGS,
        input_shape=(2, 16),
        expected_output_shape=(2, 8),
        expected_num_trainable_weights=2,
        expected_num_losses=0,
    )


def test_residual_block_passes_keras_layer_harness(harness):
    harness.run_layer_test(
        ResidualBlock,
        init_kwargs=BLOCK_KWARGS,
        input_shape=(2, 16),
        expected_output_shape=(2, 16),
        expected_num_trainable_weights=4,
        expected_num_losses=2,
    )


def test_gaussian_noise_passes_keras_layer_harness(harness):
    harness.run_layer_test(
        GaussianNoise,
        init_kwargs={"stddev": 0.05, "seed": 1},
        input_shape=(2, 16),
        call_kwargs={"training": True},
        expected_output_shape=(2, 16),
        expected_num_trainable_weights=0,
        expected_num_seed_generators=1,
        expected_num_losses=0,
    )


def test_sum_and_product_passes_keras_layer_harness(harness):
    harness.run_layer_test(
        SumAndProduct,
        init_kwargs={},
        input_shape=[(2, 3), (2, 3)],
        expected_output_shape=((2, 3), (2, 3)),
        expected_num_trainable_weights=0,
        run_training_check=False,
    )


def test_custom_dense_matches_hand_computed_values():
    layer = CustomDense(2, activation="relu")
    layer.build((None, 3))
    kernel = np.array([[1, -1], [2, -2], [3, -3]], np.float32)
    layer.set_weights([kernel, np.array([1, 1], np.float32)])
    outputs = layer(np.array([[1.0, 1.0, 1.0]], np.float32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), [[7.0, 0.0]])


def test_custom_dense_uses_its_initializer_and_regularizes_only_its_kernel():
    layer = CustomDense(3, kernel_initializer="ones", kernel_regularizer=L1Penalty(0.01))
    layer.build((None, 4))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), np.ones((4, 3)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.bias), np.zeros(3))
    layer.bias.assign(np.full(3, 5.0, np.float32))  # a regularized bias would add 0.15
    assert [float(loss) for loss in layer.losses] == pytest.approx([0.01 * 4 * 3])


def test_custom_dense_keeps_its_kernel_constraint_through_an_optimizer_step():
    layer = CustomDense(2, kernel_initializer="ones", kernel_constraint=PositiveWeights())
    layer.build((None, 3))
    assert layer.kernel.constraint is not None
    optimizer = keras.optimizers.SGD(learning_rate=10.0)
    with tf.GradientTape() as tape:
        # gradient 4 per kernel entry: 1 - 10 * 4 < 0 without the constraint
        loss = keras.ops.sum(layer(np.ones((4, 3), np.float32)))
    variables = layer.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    assert keras.ops.convert_to_numpy(layer.kernel).min() >= 0.0


def test_residual_block_of_two_layers_matches_a_hand_computation():
    # out = x + relu(relu(x W1 + b1) W2 + b2): one skip around the whole stack, each layer fed
    # the previous one's output.
    block = ResidualBlock(2, num_layers=2, activation="relu")
    x = np.array([[1.0, -2.0]], np.float32)
    block.build(x.shape)
    w1, b1 = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32), np.array([0.5, 0.0], np.float32)
    w2, b2 = np.array([[2.0, 0.0], [1.0, 1.0]], np.float32), np.array([0.0, 1.0], np.float32)
    block.hidden[0].set_weights([w1, b1])
    block.hidden[1].set_weights([w2, b2])
    # x W1 + b1 = [1 - 6 + 0.5, 2 + 2] = [-4.5, 4] -> relu [0, 4]
    # [0, 4] W2 + b2 = [4, 4 + 1] = [4, 5] -> relu [4, 5]; plus x: [5, 3]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x)), [[5.0, 3.0]])


def test_residual_block_adds_its_inputs_to_the_stack_output():
    block = ResidualBlock(3, num_layers=1, activation=None)
    inputs = np.array([[1.0, 2.0, 3.0]], np.float32)
    block.build(inputs.shape)
    block.hidden[0].set_weights([2 * np.eye(3, dtype=np.float32), np.ones(3, np.float32)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block(inputs)), [[4.0, 7.0, 10.0]])


def test_residual_block_seed_gives_each_layer_a_different_kernel():
    block = ResidualBlock(4, kernel_initializer=GlorotNormalGain(seed=5), seed=10)
    block.build((None, 4))
    first, second = (keras.ops.convert_to_numpy(layer.kernel) for layer in block.hidden)
    assert not np.array_equal(first, second)


def test_gaussian_noise_is_identity_at_inference_and_noisy_in_training():
    layer = GaussianNoise(1.0, seed=0)
    inputs = np.zeros((64, 64), np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(inputs)), inputs)
    first = keras.ops.convert_to_numpy(layer(inputs, training=True))
    second = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert not np.array_equal(first, second)  # the seed generator advances
    np.testing.assert_allclose(first.std(), 1.0, rtol=0.05)


def normal_ks_distance(values):
    """Kolmogorov-Smirnov distance between the values' empirical CDF and the standard normal's."""
    values = np.sort(np.ravel(values).astype(np.float64))
    cdf = 0.5 * (1.0 + tf.math.erf(values / np.sqrt(2.0)).numpy())
    ranks = np.arange(1, values.size + 1) / values.size
    return max(np.max(ranks - cdf), np.max(cdf - (ranks - 1.0 / values.size)))


def test_box_muller_noise_is_standard_normal_in_both_halves_and_uncorrelated():
    shape = (999, 1001)  # an odd count: the last pair's sine is dropped
    values = keras.ops.convert_to_numpy(standard_normal(shape, keras.random.SeedGenerator(0)))
    assert values.shape == shape and values.dtype == np.float32
    flat = values.ravel()
    cosines, sines = flat[: flat.size // 2], flat[flat.size // 2 + 1 :]
    # Critical KS distance at p = 0.001 is 1.95 / sqrt(n): 0.002 for the whole, 0.0028 a half.
    # A radius without its square root, an angle without 2 pi, or a uniform's values are
    # 0.05 and more away.
    assert normal_ks_distance(flat) < 1.95 / np.sqrt(flat.size)
    for half in (cosines, sines):
        assert normal_ks_distance(half) < 1.95 / np.sqrt(half.size)
    assert abs(np.corrcoef(cosines, sines[: cosines.size])[0, 1]) < 0.005
    assert np.max(np.abs(flat)) < 6.0  # log(1 - u) with u < 1: finite, within sqrt(2 ln 2**24)


def test_gaussian_noise_of_a_shape_known_only_when_run_uses_keras_generator():
    layer = GaussianNoise(2.0, seed=0)
    noisy = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec([None, 512], tf.float32)
    )
    values = noisy(tf.zeros((512, 512))).numpy()
    np.testing.assert_allclose(values.std(), 2.0, rtol=0.01)
    assert normal_ks_distance(values / 2.0) < 1.95 / np.sqrt(values.size)


def test_gaussian_noise_is_the_same_for_the_same_seed_and_keeps_the_dtype():
    inputs = np.zeros((4, 6), np.float32)
    first = GaussianNoise(0.5, seed=7)(inputs, training=True)
    again = GaussianNoise(0.5, seed=7)(inputs, training=True)
    np.testing.assert_array_equal(first, again)
    low = GaussianNoise(0.5, seed=7, dtype="mixed_bfloat16")(inputs, training=True)
    assert low.dtype == "bfloat16"
    np.testing.assert_array_equal(low, tf.cast(tf.cast(first, "bfloat16"), "float32"))


def test_gaussian_noise_keeps_its_seed_generator_as_a_plain_attribute():
    layer = GaussianNoise(0.1, seed=3)
    assert isinstance(layer.seed_generator, keras.random.SeedGenerator)


@pytest.mark.parametrize(
    "make_layer, inputs",
    [
        (
            lambda: CustomDense(4, **{k: v for k, v in PROJECTION_KWARGS.items() if k != "units"}),
            np.ones((2, 3), np.float32),
        ),
        (lambda: ResidualBlock(**BLOCK_KWARGS), np.ones((2, 16), np.float32)),
        (lambda: GaussianNoise(0.1, seed=0), np.ones((2, 3), np.float32)),
    ],
    ids=["custom_dense", "residual_block", "gaussian_noise"],
)
def test_layers_under_global_mixed_bfloat16_keep_float32_variables(
    mixed_bfloat16, make_layer, inputs
):
    layer = make_layer()
    outputs = layer(inputs, training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert all(v.dtype == "float32" for v in layer.weights)


def test_residual_block_passes_its_dtype_policy_to_its_layers():
    block = ResidualBlock(4, dtype="mixed_bfloat16")
    outputs = block(np.ones((2, 4), np.float32))
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert [layer.dtype_policy.name for layer in block.hidden] == ["mixed_bfloat16"] * 2
    assert all(v.dtype == "float32" for v in block.weights)


def test_sum_and_product_matches_hand_computed_values():
    total, product = SumAndProduct()([np.array([[2.0, -1.0]]), np.array([[3.0, 4.0]])])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(total), [[5.0, 3.0]])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(product), [[6.0, -4.0]])


@pytest.mark.parametrize(
    "make_layer, message",
    [
        (lambda: CustomDense(0), "Received: units=0"),
        (lambda: ResidualBlock(4, num_layers=0), "Received: num_layers=0"),
        (lambda: GaussianNoise(-0.1), "Received: stddev=-0.1"),
        (lambda: ResidualBlock(4).build((None, 3)), "units=4"),
        (lambda: SumAndProduct().build([(None, 2), (None, 3)]), "same shape"),
    ],
    ids=["dense_units", "block_layers", "noise_stddev", "block_width", "pair_shapes"],
)
def test_layers_reject_invalid_arguments(make_layer, message):
    with pytest.raises(ValueError, match=message):
        make_layer()


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 5, 3, 4)], ids=["rank3", "rank4"])
def test_custom_dense_maps_the_last_axis_of_inputs_of_any_rank(shape):
    # (batch, ..., d) -> (batch, ..., units), each position by the same kernel: the input size
    # comes from the last axis (input_shape[1] would build a (3, units) kernel here).
    inputs = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    layer = CustomDense(2, kernel_initializer=GlorotNormalGain(seed=0))
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    assert kernel.shape == (4, 2) and outputs.shape == (*shape[:-1], 2)
    np.testing.assert_allclose(outputs, inputs @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_custom_dense_without_bias_has_no_bias_and_adds_nothing():
    layer = CustomDense(2, kernel_initializer="ones", use_bias=False)
    outputs = keras.ops.convert_to_numpy(layer(np.array([[1.0, 2.0]], np.float32)))
    assert layer.bias is None and [w.name for w in layer.weights] == ["kernel"]
    assert outputs.tolist() == [[3.0, 3.0]]


def test_custom_dense_refuses_inputs_of_another_size_once_built():
    layer = CustomDense(2)
    layer(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones((1, 4), np.float32))


def test_custom_dense_rebuilt_from_its_config_keeps_bias_choice_and_constraint():
    # A key missing from get_config is lost silently: the rebuilt layer grows a bias or stops
    # clipping its kernel.
    layer = CustomDense(2, use_bias=False, kernel_constraint=PositiveWeights(0.5))
    rebuilt = CustomDense.from_config(layer.get_config())
    rebuilt.build((None, 3))
    assert rebuilt.bias is None and len(rebuilt.weights) == 1
    clipped = rebuilt.kernel.constraint(keras.ops.convert_to_tensor([[-1.0, 2.0]]))
    assert keras.ops.convert_to_numpy(clipped).tolist() == [[0.5, 2.0]]


def test_residual_block_adds_the_skip_after_the_activation_not_before():
    # f(x) = 0 (zero kernels): the block returns x itself, negative entries included; an
    # activation applied after the skip would turn -5 into relu(-5) = 0.
    block = ResidualBlock(3, kernel_initializer="zeros", activation="relu")
    outputs = block(np.array([[-5.0, 0.0, 2.0]], np.float32))
    assert keras.ops.convert_to_numpy(outputs).tolist() == [[-5.0, 0.0, 2.0]]


def test_residual_block_rebuilt_from_its_config_draws_the_same_kernels():
    block = ResidualBlock(4, kernel_initializer=GlorotNormalGain(), seed=7)
    block.build((None, 4))
    rebuilt = ResidualBlock.from_config(block.get_config())
    rebuilt.build((None, 4))
    for original, copy in zip(block.weights, rebuilt.weights):
        np.testing.assert_array_equal(copy.numpy(), original.numpy())
