#!/usr/bin/env python3
"""Grades one submission of the exercises kit against the teacher's kit bundled beside it.

Only the files that the exercises write are taken from the submission (grading.json lists
them); the tests, their conftest and the rest of the project are the teacher's, so a student
who edits `tests/` changes nothing. The teacher's hidden tests sit in `kit/tests/hidden/`.

- Gradescope: `run_autograder` runs `python3 autograder.py gradescope`; the submission is in
  `$AUTOGRADER_ROOT/submission` (default `/autograder`) and the grade goes to
  `$AUTOGRADER_ROOT/results/results.json`.
- Classroom 50: its runner runs `python3 autograder.py` in the student's checkout; the grade
  goes to `result.json` and `release-body.md` there. Exit 0 means the grading ran.

Standard library only; installs the kit's dependencies first when they are missing.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "grading.json").read_text(encoding="utf-8"))
NEEDED = "import tensorflow, keras, pytest, sklearn"


def prepare(work):
    """The teacher's kit copied into `work`, its dependencies installed if they are missing."""
    shutil.copytree(HERE / "kit", work)
    if subprocess.run([sys.executable, "-c", NEEDED], capture_output=True).returncode:
        install = [sys.executable, "-m", "pip", "install", "--quiet"]
        subprocess.run([*install, f"{work}[cpu,digits]", "pytest"], check=True)


def take_submission(submission, work):
    """Copies the exercise files found in `submission` over the kit; returns those taken."""
    taken = []
    for relative in MANIFEST["files"]:
        source = submission / relative
        if source.is_file():
            shutil.copyfile(source, work / relative)
            taken.append(relative)
    return taken


def grade(submission, reports):
    """Runs check in a fresh copy of the kit with the submission's files; returns its code."""
    with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
        work = Path(scratch) / "kit"
        prepare(work)
        taken = take_submission(submission, work)
        print(f"graded files from the submission: {', '.join(taken) or 'none'}", flush=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(work / "src"),  # before any installed copy of the package
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [sys.executable, "-m", f"{MANIFEST['package']}.check", *reports]
        return subprocess.run(command, cwd=work, env=env).returncode


def main(argv):
    if argv[1:] == ["gradescope"]:
        root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
        results = root / "results" / "results.json"
        code = grade(root / "submission", ["--json", str(results)])
    elif not argv[1:]:
        here = Path.cwd()
        code = grade(here, ["--classroom50", str(here)])
    else:
        print(f"usage: {argv[0]} [gradescope] (received: {' '.join(argv[1:])})", file=sys.stderr)
        return 2
    return 0 if code in (0, 1) else code  # 1: some exercise is not done, which is a grade


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
