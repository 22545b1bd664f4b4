"""The documentation site builds strictly: every page in the nav, every link and anchor found."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strictly_with_every_page_and_link(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pages = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    built = sorted(p.parent.name if p.parent != site else "index" for p in site.rglob("index.html"))
    assert [page for page in pages if page not in built] == []


def test_the_front_page_is_short_and_points_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    for page in sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md"):
        assert f"(docs/{page})" in readme, page
