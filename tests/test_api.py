"""The public API: what README's examples use, re-exported from the package."""

import inspect
import types

import numpy as np
import pytest

import jaxsoftmax as js


def test_every_public_name_is_exported_and_documented():
    for name in js.__all__:
        getattr(js, name)  # imported on first use
    public = {
        name
        for name, value in vars(js).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations", "importlib", "TYPE_CHECKING")
    }
    assert sorted(js.__all__) == sorted(public) == sorted(js._EXPORTS)
    assert set(js.__all__) <= set(dir(js))
    undocumented = [name for name in js.__all__ if not inspect.getdoc(getattr(js, name))]
    assert undocumented == []
    with pytest.raises(AttributeError, match="no attribute 'trian_sweep'"):
        js.trian_sweep  # noqa: B018


def test_importing_the_package_imports_no_jax():
    import subprocess
    import sys

    code = "import sys, jaxsoftmax; print('jax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_readme_loop_example_stops_early_and_goes_on(mnist_dir, tmp_path):
    """README's "drive the loop yourself": stop once every model's training loss over a
    chunk averages below 45 (never on test accuracy, which would choose on the test set),
    save, go on later."""
    mnist = js.load_dataset("mnist", data_dir=mnist_dir)
    config = js.SweepConfig(learning_rates=(0.002, 0.005), steps=400, eval_every=10, chunk_steps=50)
    run = js.SweepRun.start(mnist, config)
    for report in run:
        if report.train.loss.mean(axis=0).max() < 45:
            break
    js.save_checkpoint(tmp_path / "checkpoint.npz", run.checkpoint())
    stopped = run.result()
    assert stopped.interrupted and 0 < stopped.steps_done.max() < 400
    checkpoint, _ = js.load_checkpoint(tmp_path / "checkpoint.npz")
    resumed = js.SweepRun.restore(mnist, checkpoint)
    for _ in resumed:
        pass
    finished, whole = resumed.result(), js.train_sweep(mnist, config)
    assert not finished.interrupted
    np.testing.assert_array_equal(finished.params["w"], whole.params["w"])


def test_readme_example_trains_and_returns_parameters(mnist_dir):
    mnist = js.load_dataset("mnist", data_dir=mnist_dir)
    config = js.SweepConfig(learning_rates=(0.002, 0.005), steps=50, eval_every=25)
    result = js.train_sweep(mnist, config)
    assert [run["learning_rate"] for run in result.runs()] == [0.002, 0.005]
    assert result.params["w"].shape == (2, 784, 10) and result.params["b"].shape == (2, 10)
    assert all(run["test_accuracy"] > 0.8 for run in result.runs())
    # The trained parameters work with the model functions.
    params = {"w": result.params["w"][1], "b": result.params["b"][1]}
    inputs = mnist.test_images.reshape(-1, 784) / 255.0
    accuracy = js.accuracy(js.logits(params, inputs), mnist.test_labels)
    assert abs(float(accuracy) - result.runs()[1]["test_accuracy"]) < 1e-6
