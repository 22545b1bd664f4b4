"""The notebooks (the tour, inspecting a run) run top to bottom in a fresh kernel of this
interpreter."""

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"


def execute(path, tmp_path, monkeypatch):
    """Runs the notebook at `path` in a fresh kernel of this very Python; returns the text it
    printed (after checking that no cell raised)."""
    # A kernel spec of this Python (JUPYTER_PATH comes first), whatever else is installed.
    spec = tmp_path / "kernels" / "this"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "language": "python", "display_name": "this"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, kernel_name="this", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    # One print can reach the notebook as several stream outputs (the kernel flushes stdout on
    # a timer, which a busy machine hits between the pieces): read the text joined.
    return "".join(output.get("text", "") for output in outputs), outputs


def test_tour_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    printed, _ = execute(NOTEBOOK, tmp_path, monkeypatch)
    assert "traces: 1 then 3" in printed, printed[-2000:]


def test_the_inspect_notebook_shows_curves_figures_and_predictions_of_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "run"))
    printed, outputs = execute(NOTEBOOK.parent / "inspect_run.ipynb", tmp_path, monkeypatch)
    assert f"inspecting {tmp_path / 'run'}" in printed
    assert "step 300, task=" in printed and "  eval_loss: " in printed, printed[-2000:]
    assert printed.count("  example ") >= 5  # five held-out examples, target beside prediction
    images = [o for o in outputs if o.output_type == "execute_result" and "image/png" in o.data]
    assert len(images) == 1  # the curves
