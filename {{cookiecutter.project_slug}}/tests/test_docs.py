"""The documentation site builds strictly, its commands are valid, and the tutorial runs."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = "{{ cookiecutter.package_name }}"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: str):
    """(language, text) of each fenced code block of `page`, in order."""
    return BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


def command_lines(text: str) -> list[str]:
    """Each shell command of a bash block (continued lines joined, comments cut)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.split("  #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def page_commands(page: str) -> list[str]:
    return [line for kind, text in blocks(page) if kind == "bash" for line in command_lines(text)]


def test_the_docs_site_builds_strictly_with_every_page_and_link(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pages = sorted(p.stem for p in DOCS.glob("*.md"))
    built = sorted(p.parent.name if p.parent != site else "index" for p in site.rglob("index.html"))
    assert [page for page in pages if page not in built] == []
    # The reference is generated from the code: every key and every task is on its page.
    reference = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "<!-- reference:" not in reference
    for key in ("train.steps", "optimizer.ema_decay", "distribute.peer_timeout_seconds"):
        assert f"<code>{key}</code>" in reference, key
    from {{ cookiecutter.package_name }}.tasks.base import shipped_tasks

    for task in shipped_tasks():
        assert f"task={task}" in reference, task
    assert "<code>{{ cookiecutter.default_task }}</code> (default)" in reference


def test_the_front_page_is_short_and_points_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    for page in sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md"):
        assert f"(docs/{page})" in readme, page


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_command_in_the_docs_names_keys_options_and_values_that_exist(page):
    """A command the docs show with a key, a value or an option its command refuses would fail
    for a reader (a task the page writes itself, and sweeps' comma lists, are left to the tests
    that run them); `--option` and `--sections a,b` must appear in the command's `--help`."""
    from {{ cookiecutter.package_name }}.tasks.base import shipped_tasks

    tasks, options = shipped_tasks(), {}
    for line in page_commands(page):
        words = shlex.split(line)
        if words[:2] != ["python", "-m"] or not words[2].startswith(f"{PACKAGE}."):
            continue
        command = words[2].split(".", 1)[1]
        assert (ROOT / "src" / PACKAGE / f"{command}.py").is_file(), line
        for flag, value in zip(words[3:], [*words[4:], ""]):
            if flag.startswith("--") and flag != "--help":
                names = value.split(",") if flag == "--sections" else []
                options.setdefault(words[2], set()).update([flag, *names])
        overrides = [word for word in words[3:] if "=" in word and not word.startswith("-")]
        chosen = [word.split("=", 1)[1] for word in overrides if word.startswith("task=")]
        if "-m" in words or set(chosen) - set(tasks):
            continue
        try:
            load_config(overrides)
        except Exception as error:
            raise AssertionError(f"{page}: {line}: {error}") from None
    for module, used in options.items():
        env = {**os.environ, "COLUMNS": "1000"}  # argparse: no wrapped words
        shown = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env
        ).stdout
        missing = [name for name in used if not re.search(rf"(?<![\w-]){name}(?!\w)", shown)]
        assert missing == [], f"{page}: {module} --help does not list {missing}"


# Lines of the tutorial the test does not run, and why.
NOT_RUN = {
    "python -m venv .venv && . .venv/bin/activate": "the tests run in the installed environment",
    "pip install -e '.[dev]'": "installed already",
    "tensorboard --logdir runs": "a server; the event files it reads are checked below",
    'pytest -m "not slow" --task=<name>': "a placeholder; this suite runs on every task",
}

DRIVER = """
import json, runpy, subprocess, sys
from pathlib import Path

for kind, text in json.loads(sys.argv[1]):
    if kind == "file":
        path, _, body = text.partition("\\n")
        Path(path.lstrip("# ").strip()).write_text(body, encoding="utf-8")
        continue
    print("$", text, flush=True)
    words = text.split()
    if words[:2] == ["python", "-m"]:  # in this process: TensorFlow is imported once
        sys.argv = [words[2], *(word.strip("'") for word in words[3:])]
        try:
            runpy.run_module(words[2], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = stop.code or 0
    else:
        code = subprocess.run(text, shell=True).returncode
    if code:
        sys.exit(f"exit {code}: {text}")
"""


def steps_of(page: str) -> list[tuple[str, str]]:
    """The page's task files to write and commands to run, in order."""
    steps = []
    for language, text in blocks(page):
        if language == "python":
            steps.append(("file", text))
            continue
        steps += [("command", line) for line in command_lines(text) if line not in NOT_RUN]
    return steps


@pytest.mark.slow
def test_the_tutorial_and_the_task_guide_run_as_written(tmp_path):
    shutil.copytree(ROOT / "src", tmp_path / "src")  # the pages add task files to it
    steps = steps_of("tutorial.md") + steps_of("tasks.md")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(steps)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = tmp_path / "runs"
    assert json.loads((runs / "first" / "final_metrics.json").read_text())["step"] == 2000
    assert json.loads((runs / "first" / "eval.json").read_text())["step"] == 2000
    assert (runs / "first" / "export" / "model.keras").is_file()
    assert list((runs / "first" / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads((runs / "faster" / "run.json").read_text())["config"]["optimizer"][
        "learning_rate"
    ] == pytest.approx(0.005)
    product = json.loads((runs / "product" / "eval.json").read_text())
    assert product["eval_mae"] < 0.1  # predicting 0 (the mean of x1 * x2) scores 0.25
    gru = json.loads((runs / "gru" / "final_metrics.json").read_text())
    assert gru["step"] == 3000 and gru["eval_loss"] < 0.1  # predicting the mean scores 0.54
    shown = page_commands("tutorial.md") + page_commands("tasks.md")
    assert [line for line in shown if line in NOT_RUN] == list(NOT_RUN)
