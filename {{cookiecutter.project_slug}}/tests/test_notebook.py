"""The tour notebook runs top to bottom in a fresh kernel of this interpreter."""

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"


def test_tour_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    # A kernel spec of this very Python (JUPYTER_PATH comes first), whatever else is installed.
    spec = tmp_path / "kernels" / "tour"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "language": "python", "display_name": "tour"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, kernel_name="tour", timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    # One print can reach the notebook as several stream outputs (the kernel flushes stdout on
    # a timer, which a busy machine hits between the pieces): read the text joined.
    printed = "".join(output.get("text", "") for output in outputs)
    assert "traces: 1 then 3" in printed, printed[-2000:]
