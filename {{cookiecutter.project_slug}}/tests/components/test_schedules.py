import math

import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.components.schedules import WarmupCosine


def test_warmup_rises_linearly_then_cosine_decays_to_the_final_rate():
    schedule = WarmupCosine(peak=0.4, decay_steps=12, warmup_steps=4, final=0.1)
    rates = [float(schedule(step)) for step in range(14)]
    np.testing.assert_allclose(rates[:4], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)  # peak (s + 1) / 4
    # after the warmup: 0.1 + 0.3 (1 + cos(pi (s - 4) / 8)) / 2
    expected = [0.1 + 0.15 * (1 + math.cos(math.pi * (s - 4) / 8)) for s in range(4, 13)]
    np.testing.assert_allclose(rates[4:13], expected, rtol=1e-5)
    assert rates[13] == pytest.approx(0.1)  # stays at the final rate


def test_without_warmup_the_first_step_uses_the_peak():
    assert float(WarmupCosine(0.2, decay_steps=10)(0)) == pytest.approx(0.2)


def test_an_optimizer_follows_the_schedule_through_its_iterations():
    optimizer = keras.optimizers.SGD(learning_rate=WarmupCosine(1.0, 4, warmup_steps=2))
    variable = keras.Variable([0.0])
    seen = []
    for _ in range(4):
        seen.append(float(optimizer.learning_rate))
        optimizer.apply_gradients([(keras.ops.ones((1,)), variable)])
    np.testing.assert_allclose(seen, [0.5, 1.0, 1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [-3.0], rtol=1e-6)


def test_schedule_round_trips_through_keras_serialization():
    schedule = WarmupCosine(0.3, decay_steps=50, warmup_steps=5, final=0.01)
    revived = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(revived, WarmupCosine) and revived.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peak": 0.0, "decay_steps": 5}, "Received: peak=0.0"),
        ({"peak": 1.0, "decay_steps": 5, "warmup_steps": 5}, "warmup_steps=5, decay_steps=5"),
        ({"peak": 1.0, "decay_steps": 5, "final": 2.0}, "Received: final=2.0"),
    ],
    ids=["peak", "warmup", "final"],
)
def test_schedule_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(**kwargs)
