"""The public API: what README's example uses, re-exported from the package."""

import jaxsoftmax as js


def test_public_names_are_exported():
    for name in js.__all__:
        assert getattr(js, name) is not None


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
