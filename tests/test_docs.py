"""The template's documentation site builds strictly, and its front page stays short."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_templates_docs_site_builds_strictly(tmp_path):
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_front_page_is_short_and_points_into_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    for page in sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md"):
        assert f"(docs/{page})" in readme, page


def test_the_readme_bake_command_bakes_from_a_clone_of_this_repository(tmp_path):
    # No placeholder host or owner (`gh:org/...` ended in a git traceback): the command names
    # the clone's folder, which here is this checkout.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "gh:org/" not in readme
    commands = [line.split("#")[0].split() for line in readme.splitlines()]
    commands = [words for words in commands if words[:1] == ["cookiecutter"]]
    assert [words[1] for words in commands] == ["path/to/tf-custom-template"]
    done = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(ROOT), "--no-input"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "custom-tf-project" / "pyproject.toml").is_file()
