"""The quickstart notebook, run top to bottom on a real Jupyter kernel with small step counts."""

import json
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def settings_cell(notebook) -> int:
    """The index of the one cell tagged `parameters` (papermill's convention)."""
    tagged = [
        index
        for index, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, tagged
    return tagged[0]


def test_quickstart_is_committed_without_outputs_and_shows_a_figure():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    # Settings live in one cell, plain values a reader edits: no test machinery in sight.
    settings = notebook.cells[settings_cell(notebook)].source
    assert "STEPS = 1000" in settings and "environ" not in settings
    # A code host shows no outputs: the first cell links a figure from a full run.
    first = notebook.cells[0]
    linked = [part.split(")")[0] for part in first.source.split("](")[1:]]
    pictures = [NOTEBOOK.parent / link for link in linked if link.endswith(".png")]
    assert pictures and all(picture.is_file() for picture in pictures)


def test_quickstart_runs_top_to_bottom(cli_env, tmp_path, monkeypatch):
    logdir = tmp_path / "runs"
    for name, value in (cli_env | {"MPLBACKEND": "agg", "JUPYTER_PLATFORM_DIRS": "1"}).items():
        monkeypatch.setenv(name, value)  # JUPYTER_PLATFORM_DIRS: no migration warning
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Small step counts, injected after the settings cell as papermill would.
    overrides = f"STEPS = 40\nGRID_STEPS = 20\nLOGDIR = {str(logdir)!r}"
    notebook.cells.insert(settings_cell(notebook) + 1, nbformat.v4.new_code_cell(overrides))
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
    # Every cell ends in what it draws or prints, not a stray repr of a matplotlib object.
    reprs = [o for o in outputs if o.output_type == "execute_result" and "image/png" not in o.data]
    assert reprs == [], reprs
    assert "60000 training and 10000 test images of 28x28, 10 classes" in text
    assert "lr=0.005" in text and "test accuracy over 5 seeds" in text
    # The TensorBoard cell wrote the run through the Python API, no command line in a
    # subprocess, into the logdir the settings name.
    assert "subprocess" not in "".join(cell.source for cell in notebook.cells)
    document = json.loads((logdir / "results.json").read_text())
    assert [run["name"] for run in document["runs"]] == ["lr=0.002", "lr=0.005", "lr=0.008"]
    assert all(run["steps"] == 40 for run in document["runs"])
    assert f"{document['runs'][1]['test_accuracy']:.2%}" in text  # same as the sweep's table
