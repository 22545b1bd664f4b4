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
