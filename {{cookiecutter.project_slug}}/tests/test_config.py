import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.cli import run
from {{ cookiecutter.package_name }}.config import ConfigError, load_config

from .conftest import python_output

CONF = Path(__file__).parents[1] / "src" / "{{ cookiecutter.package_name }}" / "conf"


def test_default_config_has_every_documented_key():
    cfg = load_config([])
    for value in (
        cfg.run_dir,
        cfg.seed,
        cfg.train.steps,
        cfg.train.batch_size,
        cfg.optimizer.learning_rate,
        cfg.checkpoint.every_steps,
        cfg.eval.every_steps,
        cfg.distribute.strategy,
        cfg.precision.policy,
    ):
        assert value is not None


def test_overrides_are_typed():
    cfg = load_config(["train.steps=7", "optimizer.learning_rate=0.5", "deterministic=true"])
    assert (cfg.train.steps, cfg.optimizer.learning_rate, cfg.deterministic) == (7, 0.5, True)


@pytest.mark.parametrize("group", ["distribute", "precision"])
def test_every_shipped_group_option_loads(group):
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert options
    for option in options:
        cfg = load_config([f"{group}={option}"])
        assert option in (cfg.distribute.strategy, cfg.precision.policy)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.batch_size=-4", "train.batch_size"),
        ("train.steps=0", "train.steps"),
        ("optimizer.learning_rate=-1", "optimizer.learning_rate"),
        ("train.nonexistent=1", "train.nonexistent"),
        ("train.batch_size=abc", "train.batch_size"),
        ("optimizer.name=adagrad9", "optimizer.name"),
        ("distribute=gpu", "distribute/gpu"),
        ("optimizer.learning_rate=nan", "optimizer.learning_rate=nan: must be a finite"),
        ("train.clip_norm=inf", "train.clip_norm=inf: must be a finite"),
        ("task=tabular", "task/tabular': choose one of "),
        ("task.hidden_units=0", "task.hidden_units=0: must be a positive integer"),
        ("task.nonexistent=1", "task.nonexistent"),
        ("train.steps=3000000000", "train.steps=3000000000: more than the loop can count"),
        ("checkpoint.every_steps=2147483648", "at most 2147483647"),
    ],
    ids=[
        "negative-batch",
        "zero-steps",
        "negative-lr",
        "unknown-key",
        "wrong-type",
        "unknown-optimizer",
        "unknown-strategy",
        "nan-rate",
        "infinite-clip",
        "unknown-task",
        "zero-task-width",
        "unknown-task-key",
        "steps-beyond-int32",
        "cadence-beyond-int32",
    ],
)
def test_bad_value_is_refused_with_its_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config([override])


def test_tpu_with_float16_is_refused_by_the_shared_rule():
    with pytest.raises(ConfigError, match="TPUs have no float16"):
        load_config(["distribute=tpu", "precision=mixed_float16"])


def test_bad_config_prints_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "never"
    code = run(
        "train",
        lambda cfg: pytest.fail("must not run"),
        [f"run_dir={run_dir}", "train.batch_size=-1"],
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: train.batch_size=-1")
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["callbacks=[confusion_matrix]"],
            "error: callbacks=[confusion_matrix]: callbacks= is now actions=, "
            "e.g. actions=[confusion_matrix]\n",
        ),
        (
            ["+callbacks.mine={every_steps: 5}"],
            "error: +callbacks.mine={every_steps: 5}: callbacks= is now actions=, "
            "e.g. +actions.mine={every_steps: 5}\n",
        ),
        (  # Hydra's own flags take another path: the same line
            ["-m", "callbacks=[mlflow]"],
            "error: callbacks=[mlflow]: callbacks= is now actions=, e.g. actions=[mlflow]\n",
        ),
    ],
    ids=["group", "added_key", "sweep"],
)
def test_the_old_callbacks_key_says_in_one_line_that_it_is_now_actions(argv, line, capsys):
    code = run("train", lambda cfg: pytest.fail("must not run"), argv)
    assert code == 2
    assert capsys.readouterr().err == line
    with pytest.raises(ConfigError, match="callbacks= is now actions="):
        load_config([arg for arg in argv if arg != "-m"])
    assert list(load_config(["actions=[confusion_matrix]"]).actions) == ["confusion_matrix"]


def test_config_checks_do_not_import_tensorflow():
    code = (
        "import sys; from {{ cookiecutter.package_name }}.config import load_config; "
        "load_config(['train.steps=3']); print('tensorflow' in sys.modules)"
    )
    out = python_output(code)
    assert out.strip() == "False"


def test_automatic_log_cadence_gives_a_short_run_ten_lines():
    assert load_config(["train.steps=60"]).train.log_every_steps == 6
    assert load_config([]).train.log_every_steps == 100
    assert load_config(["train.steps=60", "train.log_every_steps=7"]).train.log_every_steps == 7


def test_xla_on_logical_cpu_replicas_is_refused_in_one_line():
    overrides = ["train.jit_compile=true", "distribute=mirrored", "distribute.cpu_devices=2"]
    with pytest.raises(ConfigError, match="XLA cannot run replicas on logical CPU devices"):
        load_config(overrides)


@pytest.mark.parametrize(
    ("value", "named"),
    [("run_dir=runs/été", "run_dir"), ("run_dir=a,b", "a,b"), ("run_dir=~/runs", "run_dir")],
    ids=["unicode", "comma", "tilde"],
)
def test_a_value_that_needs_quotes_says_to_quote_it(value, named):
    with pytest.raises(ConfigError, match="must be quoted") as error:
        load_config([value])
    assert named in str(error.value) and "\n" not in str(error.value)
    quoted = value.replace("=", "='", 1) + "'"
    assert load_config([quoted]).run_dir == value.split("=", 1)[1]


@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGINT, 130, "Ctrl-C"),
        (signal.SIGHUP, 129, "SIGHUP"),
        (signal.SIGUSR1, 138, "SIGUSR1"),
    ],
    ids=["sigterm", "ctrl-c", "sighup", "sigusr1"],
)
def test_a_signal_before_training_starts_is_one_line_and_its_exit_code(
    tmp_path, capsys, signum, code, name
):
    def starting(cfg):
        os.kill(os.getpid(), signum)  # arrives while TensorFlow starts, before the first step
        time.sleep(1)

    # Python's own Ctrl-C handler, as in a terminal (a background job inherits SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert run("train", starting, [f"run_dir={tmp_path / 'run'}"]) == code
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert err == f"stopped by {name} before training started; nothing was saved\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored for the caller


def test_stdout_closed_by_its_reader_ends_quietly_like_a_unix_tool():
    # `train ... | head -1`: the reader goes away before the command's last line.
    script = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.cli import run\n"
        "def main(cfg):\n"
        "    for step in range(100000):\n"
        "        print(f'line {step}', flush=True)\n"
        "sys.exit(run('train', main, ['run_dir=unused']))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout.readline() == b"line 0\n"
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 128 + signal.SIGPIPE
    assert "Traceback" not in err and "Exception ignored" not in err, err


def quiet_environment():
    # TensorFlow 2.21 prints absl / oneDNN lines at import whatever TF_CPP_MIN_LOG_LEVEL says;
    # a command shows only its own lines (setting the level shows everything again).
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def test_a_command_prints_no_tensorflow_start_up_lines(tmp_path):
    env = quiet_environment()
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.evaluate", f"run_dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: run_dir={tmp_path}: no run.json there; train into it first"
    ]
    train = [sys.executable, "-m", "{{ cookiecutter.package_name }}.train", "--help"]
    done = subprocess.run(train, capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert "== Configuration groups ==" in done.stdout


def test_reading_the_config_of_any_task_prints_no_tensorflow_start_up_lines(task):
    # Also when the task's module imports Keras at the top: reading the config starts
    # TensorFlow then, before the command's own line.
    train = [sys.executable, "-m", "{{ cookiecutter.package_name }}.train", f"task={task}"]
    done = subprocess.run(
        [*train, "train.batch_size=-4"], capture_output=True, text=True, env=quiet_environment()
    )
    assert done.returncode == 2
    assert done.stderr == "error: train.batch_size=-4: must be a positive integer\n"


def test_the_default_run_dir_is_one_per_task_so_a_new_task_never_collides():
    assert load_config([]).run_dir.startswith("runs/")
    for task in ("regression", "image_classification", "sequence"):
        assert load_config([f"task={task}"]).run_dir == f"runs/{task}"
    assert load_config(["task=sequence", "run_dir=runs/mine"]).run_dir == "runs/mine"


def test_experiment_presets_set_their_task_and_keys_and_the_command_line_still_wins():
    digits = load_config(["experiment=digits_long"])
    assert digits.task._target_.endswith("ImageClassificationTask")
    assert (digits.optimizer.name, digits.optimizer.schedule) == ("adamw", "warmup_cosine")
    assert (digits.checkpoint.best_metric, digits.checkpoint.best_mode) == ("eval_accuracy", "max")
    assert digits.run_dir == "runs/experiment/digits_long"
    regression = load_config(["experiment=regression_long", "train.steps=100"])
    assert regression.train.steps == 100 and regression.optimizer.ema_decay == 0.999
    with pytest.raises(ConfigError, match="experiment"):
        load_config(["experiment=no_such_experiment"])


PRESETS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def test_every_experiment_preset_composes_and_trains_in_a_fresh_process(tmp_path):
    # A fresh process has imported no task module: each preset must bring its own task, whatever
    # the bake's default task is (composing all of them first, before TensorFlow is imported:
    # importing Keras registers every task module, which would hide a preset that does not).
    assert len(PRESETS) >= 2
    code = (
        "import json, sys\n"
        "from {{ cookiecutter.package_name }}.config import load_config\n"
        "from {{ cookiecutter.package_name }}.cli import run\n"
        "from {{ cookiecutter.package_name }}.train import train\n"
        f"presets = {PRESETS!r}\n"
        "tasks = [load_config([f'experiment={name}']).task._target_ for name in presets]\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "short = ['train.steps=4', 'train.log_every_steps=2', 'eval.every_steps=2',\n"
        "         'checkpoint.every_steps=2']\n"
        "codes = [run('train', train, [f'experiment={name}', f'run_dir={sys.argv[1]}/{name}',\n"
        "                              *short]) for name in presets]\n"
        "print(json.dumps([tasks, codes]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tasks, codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0] * len(PRESETS), done.stderr[-3000:]
    for name, target in zip(PRESETS, tasks):
        final = json.loads((tmp_path / name / "final_metrics.json").read_text())
        assert final["step"] == 4 and target.endswith("Task"), (name, final)
    named = dict(zip(PRESETS, tasks))  # the shipped presets name two different tasks
    assert named["digits_long"].endswith(".image_classification.ImageClassificationTask")
    assert named["regression_long"].endswith(".regression.RegressionTask")


def test_a_preset_that_is_not_yaml_is_one_line_naming_it(tmp_path, monkeypatch):
    from {{ cookiecutter.package_name }} import config

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "broken.yaml").write_text("defaults: [\n", encoding="utf-8")
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /task: sequence\n", encoding="utf-8"
    )
    monkeypatch.setattr(config, "CONF", str(tmp_path))
    assert config.needed_tasks(["experiment=mine"]) == ["sequence"]
    assert config.needed_tasks(["experiment=mine", "task=regression"]) == ["regression"]
    with pytest.raises(ConfigError, match=r"^experiment=broken: .*broken.yaml: not YAML: ") as err:
        config.needed_tasks(["experiment=broken"])
    assert "\n" not in str(err.value)


def test_debug_presets_set_short_cadences_and_a_new_run_dir_each_time():
    smoke, again = load_config(["debug=smoke"]), load_config(["debug=smoke"])
    assert (smoke.train.steps, smoke.eval.every_steps, smoke.checkpoint.every_steps) == (20, 10, 10)
    assert smoke.run_dir.startswith("runs/debug/smoke-") and smoke.run_dir != again.run_dir
    overfit = load_config(["debug=overfit"])
    assert (overfit.data.limit_train, overfit.train.batch_size) == (256, 64)


def test_a_limit_below_one_batch_or_on_shards_is_refused():
    with pytest.raises(ConfigError, match=r"data.limit_train=10: fewer examples than one batch"):
        load_config(["data.limit_train=10"])
    with pytest.raises(ConfigError, match=r"the limit applies to data in memory"):
        load_config(["data.limit_train=256", "data.files=shards"])


def test_module_level_imports_of_the_package_form_no_circle_and_errors_is_the_bottom():
    # config -> tasks -> data -> errors -> config was a circle (broken only by imports inside
    # functions): errors now sits at the bottom and nothing the config uses imports it.
    import ast

    package = Path(__file__).resolve().parents[1] / "src" / "{{ cookiecutter.package_name }}"
    graph = {}
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        found = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
                found.add(target)
        graph[module] = found
    assert graph["{{ cookiecutter.package_name }}.errors"] == set()  # the bottom: imports nothing of ours
    for below in ("data", "shards", "tasks.base", "support"):  # what the config itself uses
        assert "{{ cookiecutter.package_name }}.config" not in graph[f"{{ cookiecutter.package_name }}.{below}"], below

    def visit(module, trail):
        assert module not in trail, " -> ".join([*trail, module])
        for target in graph.get(module, ()):
            visit(target, [*trail, module])

    for module in graph:
        visit(module, [])


@pytest.mark.parametrize(
    ("command", "reads"),
    [
        ("evaluate", {"run_dir", "checkpoint.which", "distribute.strategy", "eval.batch_size"}),
        ("export", {"run_dir", "checkpoint.which"}),
        ("plot", {"run_dir"}),
    ],
)
def test_each_commands_help_lists_only_the_keys_it_reads(command, reads, capsys):
    import importlib

    main = importlib.import_module(f"{{ cookiecutter.package_name }}.{command}").main
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split("=")[0].strip() for line in out.splitlines() if line.startswith("  ")}
    assert reads <= listed and not any(key.startswith("train.") for key in listed), listed
    assert out.startswith(f"usage: python -m {{ cookiecutter.package_name }}.{command} [key=value ...]")
