"""The benchmark runs end to end on tiny settings and reports what the README's table shows."""

import json
import subprocess
import sys

import keras
import pytest

from {{ cookiecutter.package_name }} import bench
from {{ cookiecutter.package_name }}.tasks.base import make_task

from .conftest import TASKS

TINY = [
    "--rounds",
    "1",
    "--steps",
    "20",
    "--precision-steps",
    "20",
    "--memory-examples",
    "500",
    "train.batch_size=32",
    "train.steps_per_execution=5",
    "train.log_every_steps=5",
    "eval.every_steps=10",
    "checkpoint.every_steps=10",
    "task.test_size=64",  # keys every shipped task has (the fit section leaves out the others)
    "task.hidden_units=8",
]
RATE = {"median", "min", "max", "runs"}


def run_bench(tmp_path, capsys, sections):
    path = tmp_path / "bench.json"
    assert bench.main(["--sections", sections, "--json", str(path), *TINY]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    assert json.loads(out.strip().splitlines()[-1]) == report  # the last line is the JSON
    assert "ratio loop / best fit" in out or "fit" not in sections
    return report


@pytest.mark.slow  # several model.fit and training runs, even on tiny settings
def test_loop_against_fit_and_the_input_check_report_rates_and_ratios(tmp_path, capsys):
    report = run_bench(tmp_path, capsys, "fit,input")
    assert {"model", "cores", "avx512_bf16"} <= set(report["cpu"])
    assert report["settings"]["steps"] == 20
    assert set(report["fit"]) == set(TASKS)  # every task of the package
    for fit in report["fit"].values():
        same = ("fit_spe1", "fit_spe8", "fit_spe32")  # in the loop's process, its threads
        alone = ("fit_spe1_alone", "fit_spe32_alone")  # own process, TensorFlow's defaults
        loops = ("loop", "loop_compute_only", "loop_alone", "loop_alone_compute_only")
        for name in (*loops, *same, *alone):
            assert set(fit[name]) == RATE and fit[name]["median"] > 0, name
        assert fit["best_fit"] == max(alone, key=lambda name: fit[name]["median"])
        assert fit["best_fit_same_threads"] == max(same, key=lambda name: fit[name]["median"])
        best = fit[fit["best_fit"]]["median"]
        # Each as a researcher runs it: the training command and fit in processes of their own.
        assert fit["ratio"] == pytest.approx(fit["loop_alone"]["median"] / best)
        best_same = fit[fit["best_fit_same_threads"]]["median"]
        assert fit["ratio_same_threads"] == pytest.approx(fit["loop"]["median"] / best_same)
        # Each task ran in a process of its own, its pools set by the training command's rule.
        assert fit["threads"]["intra_op"] == 1 and fit["threads"]["step_flops"] > 0
        compute = fit["loop_compute_only"]["median"]
        assert fit["overhead_percent"] == pytest.approx(100 * (1 - fit["loop"]["median"] / compute))
    assert set(report["input"]) == {"pipeline", "constant_batch", "ratio", "threads"}
    assert "precision" not in report


@pytest.mark.slow
def test_every_other_section_reports(tmp_path, capsys):
    # fit and input: the test above
    others = [section for section in bench.SECTIONS if section not in ("fit", "input")]
    report = run_bench(tmp_path, capsys, ",".join(others))
    assert set(report) == {"cpu", "versions", "settings", *others}
    precision = report["precision"]
    assert precision["ratio_to_float32"]["float32"] == 1.0
    assert set(precision["ratio_to_float32"]) == set(bench.PRECISION_POLICIES)
    assert set(precision["peak_gflops"]) == set(bench.PRECISION_POLICIES)
    for policy, peak in precision["peak_gflops"].items():
        achieved = precision[policy]["median"] * precision["step_gflop"]
        assert precision["achieved_gflops"][policy] == pytest.approx(achieved)
        assert precision["fraction_of_peak"][policy] == pytest.approx(achieved / peak)
        # The same loop on the preset's matmuls alone (the regressor's kernels chain).
        alone = precision[f"{policy}_matmuls_only"]["median"]
        achieved = alone * precision["step_gflop_matmuls_only"]
        assert precision["achieved_gflops"][f"{policy}_matmuls_only"] == pytest.approx(achieved)
        assert precision["fraction_of_peak"][f"{policy}_matmuls_only"] == pytest.approx(
            achieved / peak
        )
    breakdown = report["breakdown"]
    assert set(breakdown["in_step"]) == {"grad_norm", "metrics", "model_and_optimizer"}
    assert sum(breakdown["in_step"].values()) == pytest.approx(1.0)
    assert {"compiled_calls", "TrainingLogs", "Evaluate", "Checkpoint", "other"} <= set(
        breakdown["in_loop"]
    )
    assert sum(breakdown["in_loop"].values()) == pytest.approx(1.0, abs=0.02)
    assert breakdown["in_loop"]["compiled_calls"] > 0.05
    spe_names = {f"spe{k}" for k in bench.LOOP_STEPS_PER_EXECUTION}
    assert spe_names < set(report["steps_per_execution"])
    assert report["steps_per_execution"]["fastest"] in spe_names
    checkpoint = report["checkpoint"]
    assert set(checkpoint["cost_percent"]) == {"every_10", "every_2"}
    assert set(checkpoint["off"]) == RATE
    files = report["files"]
    assert {"memory", "files", "files_compiled_steps", "files_constant_batch"} <= set(files)
    assert files["ratio_files_to_memory"] == pytest.approx(
        files["files"]["median"] / files["memory"]["median"]
    )
    assert files["resume_seconds"]["epoch_end"] > 0
    memory = report["memory"]
    for source in ("memory", "files"):
        assert memory[f"{source}_x10_mib"] > 100  # a TensorFlow process, measured per child
        grown = memory[f"{source}_x10_mib"] - memory[f"{source}_x1_mib"]
        assert memory[f"{source}_growth_mib"] == pytest.approx(grown)
    xla = report["xla"]
    assert {"loop", "loop_xla", "fit_spe32", "fit_spe32_xla"} <= set(xla)
    assert xla["ratio_loop"] > 0 and xla["ratio_fit"] > 0


def test_the_flops_of_a_step_are_the_forward_and_backward_matmuls_of_the_model():
    # Each 2-D kernel (in, out) costs 2*B*in*out in the forward pass and twice that backward
    # (gradients of its input and of itself), less the first layer's input gradient; the
    # profiler also counts the elementwise work, a few percent here.
    cfg = bench.Bench([], 5).config(
        "task.hidden_units=64", "train.batch_size=32", task="regression"
    )
    counted = bench.step_flops(cfg)
    kernels = [tuple(map(int, v.shape)) for v in model_variables(cfg) if len(v.shape) == 2]
    matmuls = sum(6 * 32 * n_in * n_out for n_in, n_out in kernels)
    matmuls -= 2 * 32 * kernels[0][0] * kernels[0][1]
    assert matmuls <= counted <= 1.15 * matmuls


def test_matmuls_only_trains_the_chain_of_kernels_from_inputs_to_targets_alone():
    # The regressor: projection 8 -> 16, two blocks of two 16 -> 16, output 16 -> 1, and the
    # reconstruction head 16 -> 8, off the chain; biases, noise and penalties all go.
    cfg = bench.Bench([], 5).config("task.hidden_units=16", "task.num_blocks=2", task="regression")
    widths = bench.chained_widths(*bench.model_kernels(cfg))
    assert widths == [16, 16, 16, 16, 16, 1]
    make = bench.matmuls_only(make_task, widths)
    model = make(cfg).build_model()
    model.build((None, 8))
    shapes = [tuple(map(int, v.shape)) for v in model.weights]
    assert shapes == [(8, 16), (16, 16), (16, 16), (16, 16), (16, 16), (16, 1)]
    assert all(layer.activation is keras.activations.linear for layer in model.layers)
    # The loop trains it as the task's own model: the step's FLOPs are those six matmuls'.
    counted = bench.step_flops(
        bench.Bench([], 5).config(
            "task.hidden_units=16", "train.batch_size=32", "task.num_blocks=2", task="regression"
        ),
        make,
    )
    matmuls = sum(6 * 32 * n_in * n_out for n_in, n_out in shapes) - 2 * 32 * 8 * 16
    assert matmuls <= counted <= 1.15 * matmuls


@pytest.mark.parametrize("name", ["image_classification", "sequence"])
def test_a_model_whose_kernels_do_not_chain_inputs_to_targets_has_no_matmuls_only(name):
    # Convolutions (4-D kernels) start the digits model; the sequence task has named outputs.
    cfg = bench.Bench([], 5).config(task=name)
    assert bench.chained_widths(*bench.model_kernels(cfg)) is None


def test_the_precision_preset_batch_never_exceeds_the_training_examples():
    # A task of 300 examples trains on all of them each step; the command line still wins.
    small = bench.Bench(["task=regression", "task.train_size=300"], 5)
    assert "train.batch_size=300" in bench.precision_preset(small)
    assert small.config(first=bench.precision_preset(small)).train.batch_size == 300
    chosen = bench.Bench(["task=regression", "task.train_size=300", "train.batch_size=64"], 5)
    assert chosen.config(first=bench.precision_preset(chosen)).train.batch_size == 64
    assert "train.batch_size=1024" in bench.precision_preset(bench.Bench(["task=regression"], 5))


def model_variables(cfg):
    task = make_task(cfg)
    model = task.build_model()
    model(task.source(cfg.data).example_inputs)
    return model.trainable_variables


def test_help_and_bad_arguments_never_start_tensorflow():
    code = (
        f"import sys, {bench.__name__} as b\n"
        "assert 'tensorflow' not in sys.modules\n"
        "try:\n    b.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert b.main(['train.batch_size=-1']) == 2\n"
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "train.batch_size=-1: must be a positive integer" in result.stderr


def test_unknown_task_is_a_usage_error(capsys):
    assert bench.main(["--sections", "fit", "--tasks", "regression,tabular"]) == 2
    assert "--tasks=regression,tabular: choose from" in capsys.readouterr().err


def test_unknown_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--sections", "fit,speed"])
    assert exit_info.value.code == 2
    assert "unknown speed" in capsys.readouterr().err


def test_logged_rate_is_total_steps_over_total_time_not_a_median_of_rates():
    records = [
        {"step": 100, "steps_per_sec": 100.0},  # before `after`: left out
        {"step": 200, "steps_per_sec": 50.0},  # 100 steps in 2 s
        {"step": 250, "eval_loss": 0.5},  # no rate: its steps belong to the next line
        {"step": 300, "steps_per_sec": 100.0},  # 100 steps in 1 s
    ]
    assert bench.logged_rate(records, after=100) == pytest.approx(200 / 3)


def test_a_preset_keeps_only_the_task_keys_the_selected_task_has():
    # e.g. the wide precision preset widens `task.hidden_units`: a task without it runs the rest
    preset = ("task.filters=8", "task.window=4", "train.batch_size=256")
    digits = bench.Bench(["task=image_classification"], 5).applicable(preset)
    assert digits == ("task.filters=8", "train.batch_size=256")
    sequence = bench.Bench(["task=sequence"], 5).applicable(preset)
    assert sequence == ("task.window=4", "train.batch_size=256")


def test_the_fit_section_gives_each_task_the_overrides_it_has_and_leaves_out_the_rest():
    bench_run = bench.Bench(["task=regression", "task.num_blocks=3", "train.batch_size=16"], 5)
    regression = bench_run.config(task="regression")
    assert (regression.task.num_blocks, regression.train.batch_size) == (3, 16)
    sequence = bench_run.config(task="sequence")  # no num_blocks, and not `task=regression`
    assert "Sequence" in sequence.task._target_ and sequence.train.batch_size == 16
