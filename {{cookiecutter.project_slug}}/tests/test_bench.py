"""bench: its `fit` twin trains exactly as the loop (so the comparison is of the same step), and
the command runs end to end on every task and prints the figures it writes."""

import json
import statistics
import subprocess
import sys

import keras
import numpy as np
import pytest

from {{ cookiecutter.package_name }} import bench

from .conftest import RTOL, SMALL, TASKS, noise_free

TINY = [
    "--rounds",
    "2",
    "--steps",
    "10",
    *SMALL,  # batches of 32, 5 steps a call
    # keys each task has its own of (a `task.<key>` a task lacks is left out for it)
    "task.train_size=512",
    "task.hidden_units=8",
    "task.filters=4",
    "task.num_blocks=1",
]


def weights(runners) -> list:
    return [w for model in runners.trainer.models.values() for w in model.weights]


def test_fit_with_the_task_step_as_its_override_trains_exactly_as_the_loop(task, make_config):
    # SGD keeps no state but its step count and is Keras' own class in both (the loop's Adam is
    # fused). Noise off: neither run draws any.
    cfg = make_config("optimizer.name=sgd", *noise_free(task), task=task)
    runners = bench.Runners(cfg)
    start = [w.numpy() for w in weights(runners)]
    _, loop_logs = runners.loop(10)  # one untimed call and two timed: 15 steps
    by_loop = [w.numpy() for w in weights(runners)]
    loop_optimizers = runners.trainer.optimizers.values()
    loop_updates = [int(o.iterations) for o in loop_optimizers]
    for variable, value in zip(weights(runners), start):
        variable.assign(value)
    _, fit_logs = runners.fit(10)  # the same 15 batches from the same start
    assert any(not np.array_equal(a, b) for a, b in zip(start, by_loop))  # it trained
    # Two compiled programs of the same arithmetic: equal but for the last bit of a few values
    # (TensorFlow may fuse or order an op differently in each graph).
    for a, b in zip(by_loop, weights(runners)):
        np.testing.assert_allclose(b.numpy(), a, rtol=RTOL["float32"], atol=1e-7)
    # The same values logged: what the step returns, and the gradient norm of each update.
    logged = [*runners.trainer.train_outputs, *runners.trainer.grad_norms]
    assert {name: fit_logs[name] for name in logged} == pytest.approx(
        {name: loop_logs[name] for name in logged}, rel=RTOL["float32"]
    )
    # fit ran Keras' own optimizers, each updated as often as the loop's in the same 15 steps
    # (once a step, or as often as the task's own step applies it), not the loop's a second time.
    fit_optimizers = runners.fit_model.loop.optimizers
    assert all(type(o) is keras.optimizers.SGD for o in fit_optimizers.values())
    assert min(loop_updates) >= 15
    assert [int(o.iterations) for o in fit_optimizers.values()] == loop_updates
    assert [int(o.iterations) for o in loop_optimizers] == loop_updates


@pytest.mark.slow  # every task's loop and fit built and traced, even on tiny settings
def test_the_fit_comparison_runs_on_every_task_and_prints_what_it_writes(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main([*TINY, "--json", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    report = json.loads(path.read_text())
    assert list(report["fit"]) == list(TASKS)
    assert report["settings"] == {"rounds": 2, "steps": 10, "overrides": TINY[4:]}
    for name, figures in report["fit"].items():
        for runner in ("loop", "fit"):
            runs = figures[runner]["runs"]
            assert len(runs) == 2 and min(runs) > 0
            assert (figures[runner]["min"], figures[runner]["max"]) == (min(runs), max(runs))
            assert figures[runner]["median"] == pytest.approx(statistics.median(runs))
        # loop / fit of each round (side by side, through the same load), then their median.
        per_round = [a / b for a, b in zip(figures["loop"]["runs"], figures["fit"]["runs"])]
        assert figures["ratio"] == pytest.approx(statistics.median(per_round))
        # One line per task: the two medians, their ranges and the ratio, as written.
        (line,) = [line for line in out if line.split()[:1] == [name]]
        loop, fit = figures["loop"]["median"], figures["fit"]["median"]
        assert line.split()[1] == f"{loop:.1f}" and line.split()[3] == f"{fit:.1f}"
        assert line.split()[-1] == f"{figures['ratio']:.2f}"


@pytest.mark.slow
def test_the_precision_matrix_reports_each_policy_against_its_matmul_peak(tmp_path, capsys):
    path = tmp_path / "bench.json"
    regression = [*TINY[:-2], "--precision", "--tasks", "regression"]  # no filters, no blocks
    assert bench.main([*regression, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(path.read_text())["precision"]["regression"]
    assert figures["step_gflop"] > 0
    for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
        p = figures[policy]
        assert p["ratio_to_float32"] == pytest.approx(p["median"] / figures["float32"]["median"])
        assert p["achieved_gflops"] == pytest.approx(p["median"] * figures["step_gflop"])
        assert p["fraction_of_peak"] == pytest.approx(p["achieved_gflops"] / p["peak_gflops"])
        assert f"{policy} " in out and f"x{p['ratio_to_float32']:.2f} float32" in out
    assert figures["matmul"] == [32, 8, 8]  # the batch, the widest kernel's width
    assert "fit" not in json.loads(path.read_text())
    assert keras.mixed_precision.global_policy().name == "float32"  # left as found


def test_help_and_bad_arguments_never_start_tensorflow():
    code = (
        f"import sys, {bench.__name__} as b\n"
        "try:\n    b.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert b.main(['train.batch_size=-1']) == 2\n"
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train.batch_size=-1: must be a positive integer" in result.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--tasks", "regression,tabular"], "--tasks=regression,tabular: choose from"),
        (["task=gan"], "task=gan: choose tasks with --tasks, not task="),
        (["--tasks", "regression", "task.filters=8"], "task.filters=8: none of the tasks"),
        (["train.accumulate_steps=2"], "train.accumulate_steps=2: fit has no gradient"),
    ],
)
def test_a_bad_choice_is_one_line_naming_it(arguments, message, capsys):
    assert bench.main(arguments) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {message}")


def test_steps_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--steps", "0"])
    assert stopped.value.code == 2
    assert "--steps=0: must be a positive integer" in capsys.readouterr().err
