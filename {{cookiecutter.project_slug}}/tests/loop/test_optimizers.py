"""The fused Adam and AdamW compute Keras' update, step by step, and share its checkpoints."""

import keras
import numpy as np
import tensorflow as tf

from {{ cookiecutter.package_name }}.loop.optimizers import Adam, AdamW

GRADIENTS = [
    np.array([[0.5, -1.0], [2.0, 0.01]], np.float32),
    np.array([[-0.3, 0.2], [1.0, 0.0]], np.float32),
    np.array([[0.1, 0.4], [-2.0, 0.05]], np.float32),
]
START = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)


def adam_by_hand(lr, beta_1, beta_2, epsilon, weight_decay=0.0):
    """Adam as its paper and Keras write it (epsilon outside the square root), in float64."""
    w, m, v = START.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(GRADIENTS, start=1):
        w = w - lr * weight_decay * w
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
    return w


# epsilon 0.1 makes where it stands matter: inside the square root the steps differ by 10%.
SETTINGS = dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=0.1)


def run(optimizer_class, strategy=None, **settings):
    """The weights after the three GRADIENTS, and the optimizer (built under `strategy`)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        variable = keras.Variable(START)
        optimizer = optimizer_class(**SETTINGS, **settings)
        optimizer.build([variable])

    def replica_step(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    step = tf.function(lambda gradient: strategy.run(replica_step, args=(gradient,)))
    for gradient in GRADIENTS:
        step(tf.constant(gradient))
    return np.asarray(variable.numpy()), optimizer


def test_three_fused_adam_steps_equal_adam_by_hand_and_keras_adam():
    fused, _ = run(Adam)
    keras_own, _ = run(keras.optimizers.Adam)
    by_hand = adam_by_hand(0.05, 0.8, 0.9, 0.1)
    np.testing.assert_allclose(fused, by_hand, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused, keras_own, rtol=1e-6, atol=1e-7)
    assert not np.allclose(fused, START, atol=0.05)  # the steps moved every weight


def test_fused_adamw_decays_the_weights_as_keras_adamw():
    fused, _ = run(AdamW, weight_decay=0.2)
    keras_own, _ = run(keras.optimizers.AdamW, weight_decay=0.2)
    np.testing.assert_allclose(fused, adam_by_hand(0.05, 0.8, 0.9, 0.1, 0.2), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused, keras_own, rtol=1e-6, atol=1e-7)
    assert not np.allclose(fused, run(Adam)[0], atol=1e-3)  # the decay acted


def test_a_fused_adam_checkpoint_restores_into_keras_adam_with_the_same_moments(tmp_path):
    weights, fused = run(Adam)
    variable = keras.Variable(weights)
    path = tf.train.Checkpoint(optimizer=fused).write(str(tmp_path / "ckpt"))
    restored = keras.optimizers.Adam(**SETTINGS)
    restored.build([variable])
    tf.train.Checkpoint(optimizer=restored).read(path).assert_existing_objects_matched()
    assert int(restored.iterations.numpy()) == 3
    for ours, theirs in zip(fused.variables, restored.variables):
        np.testing.assert_array_equal(np.asarray(ours.numpy()), np.asarray(theirs.numpy()))


def test_fused_adam_updates_several_variables_with_one_set_of_step_scalars():
    """Each variable as Adam by hand, and the bias corrections computed once per step for all
    of them (2 powers in the traced step, not 2 per variable)."""
    with tf.distribute.get_strategy().scope():
        variables = [keras.Variable(START), keras.Variable(START * 2.0), keras.Variable(START[0])]
        optimizer = Adam(**SETTINGS)
        optimizer.build(variables)

    @tf.function
    def step(gradient):
        optimizer.apply_gradients(
            [(gradient, variables[0]), (gradient, variables[1])] + [(gradient[0], variables[2])]
        )

    for gradient in GRADIENTS:
        step(tf.constant(gradient))
    by_hand = adam_by_hand(0.05, 0.8, 0.9, 0.1)
    np.testing.assert_allclose(variables[0].numpy(), by_hand, rtol=1e-6, atol=1e-7)
    # Adam's step does not depend on where the weights start, only on the gradients.
    np.testing.assert_allclose(variables[1].numpy(), by_hand + START, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(variables[2].numpy(), by_hand[0], rtol=1e-6, atol=1e-7)
    graph = step.get_concrete_function(tf.constant(GRADIENTS[0])).graph.as_graph_def()
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    assert sum(node.op == "Pow" for node in nodes) == 2
    assert sum(node.op == "ResourceApplyAdam" for node in nodes) == 3
