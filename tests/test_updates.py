"""Template updates: a project made with cruft can be checked against the template."""

import json
import os
import sys

from .conftest import TEMPLATE, run

CRUFT = os.path.join(os.path.dirname(sys.executable), "cruft")


def test_cruft_create_then_check_reports_the_project_up_to_date(tmp_path):
    run([CRUFT, "create", str(TEMPLATE), "--no-input", "--output-dir", str(tmp_path)], cwd=tmp_path)
    project = tmp_path / "custom-tf-project"
    recorded = json.loads((project / ".cruft.json").read_text())
    assert recorded["template"] == str(TEMPLATE) and recorded["commit"]
    assert (project / "src" / "custom_tf_project" / "train.py").is_file()
    checked = run([CRUFT, "check"], cwd=project)
    assert "up to date" in checked.stdout
