"""Builds the autograder bundles of this kit under `--out` (default dist/): `make autograders`.

- `gradescope.zip`: `setup.sh` (installs the kit's dependencies with CPU TensorFlow),
  `run_autograder`, `autograder.py` and the kit; upload it as the assignment's autograder.
- `classroom50/`: `autograder.py` and its sibling files; copy the folder's content to
  `CLASSROOM/autograders/SLUG/` of the classroom's config repository.

Both carry this project's `pyproject.toml`, `src/` and `tests/` as the teacher's kit, and the
teacher's hidden tests (`--hidden`, a folder the students' kit never holds) as
`tests/hidden/`: each of their files is one graded item, hidden until the due date.
"""

import argparse
import importlib.util
import json
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".check-backups")
SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv > /dev/null
KIT="/autograder/source/kit[cpu,digits]"
python3 -m pip install --quiet --break-system-packages "$KIT" pytest \\
  || python3 -m pip install --quiet "$KIT" pytest
"""
RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission (AUTOGRADER_ROOT: another root, for a local trial).
exec python3 "${AUTOGRADER_ROOT:-/autograder}/source/autograder.py" gradescope
"""


def exercises():
    """check.py's exercise table, read without importing the package (nor TensorFlow)."""
    (check,) = (ROOT / "src").glob("*/check.py")
    spec = importlib.util.spec_from_file_location("kit_check", check)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kit_check"] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return check.parent.name, module.EXERCISES


def manifest():
    package, table = exercises()
    files = dict.fromkeys(
        f"src/{package}/{path}" for exercise in table for path, _ in exercise.functions()
    )
    return {"package": package, "files": list(files)}


def copy_kit(target, hidden):
    """The teacher's kit at `target`: pyproject, README, src/, tests/ (+ tests/hidden/)."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target / name)
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, target / name, ignore=IGNORED)
    if hidden is not None:
        shutil.copytree(hidden, target / "tests" / "hidden", ignore=IGNORED)
        (target / "tests" / "hidden" / "__init__.py").touch()


def build(out, hidden):
    if hidden is not None and not hidden.is_dir():
        hidden = None
    if out.exists():
        shutil.rmtree(out)
    data = json.dumps(manifest(), indent=2) + "\n"
    folders = {"gradescope": out / "gradescope", "classroom50": out / "classroom50"}
    for folder in folders.values():
        copy_kit(folder / "kit", hidden)
        shutil.copy2(Path(__file__).with_name("autograder.py"), folder / "autograder.py")
        (folder / "grading.json").write_text(data, encoding="utf-8")
    for name, text in (("setup.sh", SETUP), ("run_autograder", RUN)):
        (folders["gradescope"] / name).write_text(text, encoding="utf-8")
        (folders["gradescope"] / name).chmod(0o755)
    archive = out / "gradescope.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folders["gradescope"].rglob("*")):
            relative = path.relative_to(folders["gradescope"]).as_posix()
            info = zipfile.ZipInfo.from_file(path, relative)
            if path.is_file():
                info.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(info, path.read_bytes())
    shutil.rmtree(folders["gradescope"])
    return archive, folders["classroom50"], hidden


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make autograders", description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=Path, default=Path("hidden_tests"))
    parser.add_argument("--out", type=Path, default=Path("dist"))
    args = parser.parse_args(argv)
    archive, classroom, hidden = build(args.out, args.hidden)
    print(f"wrote {archive} (Gradescope) and {classroom}/ (Classroom 50)")
    found = sorted(p.name for p in hidden.glob("test_*.py")) if hidden else []
    print(f"hidden tests: {', '.join(found) if found else f'none ({args.hidden} not found)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
