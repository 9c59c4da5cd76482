"""The quickstart notebook, run top to bottom on a real Jupyter kernel with small step counts."""

import json
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    # Settings live in one cell, read from the environment the test sets below.
    assert sum("QUICKSTART_STEPS" in cell.source for cell in notebook.cells) == 1


def test_quickstart_runs_top_to_bottom(cli_env, tmp_path, monkeypatch):
    logdir = tmp_path / "runs"
    settings = {
        "QUICKSTART_STEPS": "40",
        "QUICKSTART_GRID_STEPS": "20",
        "QUICKSTART_LOGDIR": str(logdir),
        "JUPYTER_PLATFORM_DIRS": "1",  # Jupyter's own paths, without its migration warning
        "MPLBACKEND": "agg",
    }
    for name, value in (cli_env | settings).items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 3  # digits, curves, weight templates
    text = "".join(output.get("text", "") for output in outputs)
    assert "60000 training and 10000 test images of 28x28, 10 classes" in text
    assert "lr=0.005" in text and "test accuracy over 5 seeds" in text
    # The TensorBoard cell ran the real command line into the logdir the settings name.
    document = json.loads((logdir / "results.json").read_text())
    assert [run["name"] for run in document["runs"]] == ["lr=0.002", "lr=0.005", "lr=0.008"]
    assert all(run["steps"] == 40 for run in document["runs"])
    assert f"{document['runs'][1]['test_accuracy']:.2%}" in text  # same as the sweep's table
