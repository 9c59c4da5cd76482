"""Using what a run trained: loading it, predicting from files, exporting, and where each
model errs; every result held against NumPy recomputations from the saved parameters."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import jaxsoftmax as js
from jaxsoftmax.cli import export, predict
from jaxsoftmax.cli import train as cli
from jaxsoftmax.errors import DataError

from .conftest import REPO

RATES = ("0.002", "0.005", "0.008")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_dir):
    """A real 200-step run of three learning rates on MNIST, as the command line writes it."""
    logdir = tmp_path_factory.mktemp("trained") / "run"
    argv = ["--learning-rates", ",".join(RATES), "--steps", "200", "--eval-every", "50"]
    argv += ["--data-dir", str(mnist_dir), "--quiet", "--no-compilation-cache"]
    assert cli.main([*argv, "--logdir", str(logdir)]) == 0
    return logdir


def numpy_predictions(logdir, index, images):
    """Oracle: float64 NumPy from the checkpoint's arrays, read with numpy alone."""
    with np.load(logdir / "checkpoint.npz") as archive:
        w, b = archive["params_w"][index], archive["params_b"][index]
    logits = images.reshape(len(images), -1) / 255.0 @ w.astype(np.float64) + b
    return logits.argmax(axis=1)


def run_main(module, argv, capsys):
    try:
        status = module.main([str(arg) for arg in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_load_run_gives_each_model_by_name(run_dir, mnist):
    run = js.load_run(run_dir)
    assert run.names == [f"lr={rate}" for rate in RATES] and len(run) == 3
    for index, model in enumerate(run):
        assert model.image_shape == (28, 28) and model.class_names == tuple("0123456789")
        predicted = model.predict(mnist.test_images)
        np.testing.assert_array_equal(
            predicted, numpy_predictions(run_dir, index, mnist.test_images)
        )
        accuracy = (predicted == mnist.test_labels).mean()
        assert accuracy == pytest.approx(run.runs[index]["test_accuracy"], abs=2e-4)
        probabilities = model.predict_proba(mnist.test_images[:50] / 255.0)  # floats in [0, 1]
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
    with pytest.raises(DataError, match=r"no run 'lr=0\.1' in .*; its runs are lr=0\.002, "):
        run["lr=0.1"]
    with pytest.raises(DataError, match="no validation split to choose on"):
        run.best()
    best = run.best("test_accuracy")  # allowed when asked for by name: optimistic
    finals = [entry["test_accuracy"] for entry in run.runs]
    assert best.name == run.names[int(np.argmax(finals))]
    for metric in ("test_loss", "train_loss"):  # smaller is better
        finals = [entry[metric] for entry in run.runs]
        assert run.best(metric).name == run.names[int(np.argmin(finals))], metric


def test_models_refuse_images_they_cannot_take(run_dir):
    model = js.load_run(run_dir)["lr=0.005"]
    for images, message in [
        (np.zeros((2, 32, 32), np.uint8), r"do not fit model lr=0\.005, which takes 28x28"),
        (np.full((1, 28, 28), 2.0), r"float images must hold pixels in \[0, 1\]"),
        (np.zeros((1, 28, 28), np.int16), "must be uint8 or float"),
    ]:
        with pytest.raises(DataError, match=message):
            model.predict(images)


def test_pictures_of_every_test_image_get_the_models_classes(run_dir, mnist, tmp_path, capsys):
    """All 10,000 test images as 28x28 PNGs (light on dark): exactly the model's classes.
    2,000 as 84x84 dark-on-light scans: framed anew (box, centre of mass), as accurate as
    the model on the digits themselves and at least 95% the same classes; `--raw` (padded
    and resized alone, which undoes the scan's scaling exactly) at least 98% the same."""
    model = js.load_run(run_dir)["lr=0.005"]
    expected = model.predict(mnist.test_images)
    (tmp_path / "plain").mkdir()
    (tmp_path / "scans").mkdir()
    plain, scans = [], []
    for index, image in enumerate(mnist.test_images):
        plain.append(tmp_path / "plain" / f"{index}.png")
        Image.fromarray(image).save(plain[-1])
        if index < 2000:
            scans.append(tmp_path / "scans" / f"{index}.png")
            large = Image.fromarray(image).resize((84, 84), Image.Resampling.BICUBIC)
            Image.fromarray(255 - np.asarray(large)).save(scans[-1])
    labels = mnist.test_labels[:2000]
    for files, extra, least in ((plain, [], 1.0), (scans, [], 0.95), (scans, ["--raw"], 0.98)):
        status, out, err = run_main(
            predict, [run_dir, "--run", "lr=0.005", "--json", *extra, *files], capsys
        )
        assert status == 0, err
        predictions = json.loads(out)["predictions"]
        got = np.array([row["top"][0]["class"] for row in predictions])
        agreement = (got == expected[: len(got)]).mean()
        assert agreement >= least, (extra, agreement)
        if files is scans and not extra:
            assert (got == labels).mean() >= (expected[:2000] == labels).mean() - 0.005
    assert agreement < 1.0  # the scans went through a real resize and inversion


def test_lines_name_the_top_classes_and_arrays_give_one_line_per_image(
    run_dir, mnist, tmp_path, capsys
):
    np.save(tmp_path / "four.npy", mnist.test_images[:4])
    status, out, err = run_main(predict, [run_dir, "--run", "lr=0.002", tmp_path / "four.npy"],
                                capsys)  # fmt: skip
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 4
    expected = js.load_run(run_dir)["lr=0.002"].predict_proba(mnist.test_images[:4])
    for index, line in enumerate(lines):
        pattern = rf"{re.escape(str(tmp_path / 'four.npy'))}#{index}: (\w) \((\d+\.\d)%\), "
        found = re.match(pattern, line)
        assert found and int(found.group(1)) == expected[index].argmax(), line
        assert float(found.group(2)) == pytest.approx(100 * expected[index].max(), abs=0.06)
        assert line.count("(") == 3  # the top 3 by default


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--run", "lr=9", "IMAGE"], 1, "no run 'lr=9' in LOGDIR; its runs are lr=0.002, lr=0.005"),
        (["IMAGE"], 1, "holds 3 models (lr=0.002, lr=0.005, lr=0.008); choose one with --run"),
        (["--best", "IMAGE"], 1, "no validation split to choose on"),
        (["--run", "lr=0.002", "TEXT"], 1, "TEXT: not an image, IDX file or .npy array"),
        (["--run", "lr=0.002", "BIG"], 1, "holds an array of shape (2, 32, 32); the model"),
        (["--run", "lr=0.002", "MISSING"], 1, "MISSING: cannot read (No such file"),
        (["--run", "lr=0.002", "--top", "0", "IMAGE"], 2, "--top must be a whole number >= 1"),
        (["--run", "lr=0.002", "--best", "IMAGE"], 2, "not allowed with argument"),
    ],
)
def test_predict_mistakes_are_one_line(run_dir, tmp_path, capsys, argv, status, message):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "image.png")
    (tmp_path / "text.txt").write_text("hello")
    np.save(tmp_path / "big.npy", np.zeros((2, 32, 32), np.uint8))
    paths = {"IMAGE": tmp_path / "image.png", "TEXT": tmp_path / "text.txt",
             "BIG": tmp_path / "big.npy", "MISSING": tmp_path / "missing.png"}  # fmt: skip
    argv = [paths.get(arg, arg) for arg in argv]
    got, out, err = run_main(predict, [run_dir, *argv], capsys)
    message = message.replace("LOGDIR", str(run_dir))
    for name, path in paths.items():
        message = message.replace(name, str(path))
    assert (got, out, err.count("\n")) == (status, "", 1) and message in err, err


def test_a_folder_without_a_finished_run_is_one_line(tmp_path, capsys):
    status, _, err = run_main(predict, [tmp_path, tmp_path / "x.png"], capsys)
    assert status == 1 and err == (
        f"error: {tmp_path} holds no finished jaxsoftmax run (no results.json); train one "
        f"with python -m jaxsoftmax.train --logdir {tmp_path}\n"
    )


def test_predicting_needs_no_jax(run_dir, tmp_path):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "image.png")
    argv = [str(run_dir), "--run", "lr=0.005", str(tmp_path / "image.png")]
    code = (
        "import sys; from jaxsoftmax import predict; "
        f"status = predict.main({argv!r}); print('jax' in sys.modules, status)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.splitlines()[-1] == "False 0", done.stderr


def test_onnx_export_runs_in_onnxruntime_like_the_model(run_dir, mnist, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    path = tmp_path / "model.onnx"
    status, out, err = run_main(export, [run_dir, "--run", "lr=0.008", "-o", path], capsys)
    assert status == 0 and out == f"{path}\n", err
    session = onnxruntime.InferenceSession(str(path))
    (given,), (returned, label) = session.get_inputs(), session.get_outputs()
    assert (given.name, given.type, given.shape[1:]) == ("images", "tensor(uint8)", [28, 28])
    assert (returned.name, returned.shape[1:]) == ("probabilities", [10])
    assert (label.name, label.type) == ("label", "tensor(int64)")
    probabilities, labels = session.run(None, {"images": mnist.test_images})
    model = js.load_run(run_dir)["lr=0.008"]
    np.testing.assert_array_equal(labels, model.predict(mnist.test_images))
    np.testing.assert_array_equal(probabilities.argmax(axis=1), model.predict(mnist.test_images))
    np.testing.assert_allclose(probabilities, model.predict_proba(mnist.test_images), atol=1e-5)
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["class_names"].split("\n") == list("0123456789")
    # An existing file is kept unless --overwrite; then it is replaced.
    status, _, err = run_main(export, [run_dir, "--run", "lr=0.002", "-o", path], capsys)
    assert status == 2 and "exists" in err and err.count("\n") == 1
    assert (
        run_main(export, [run_dir, "--run", "lr=0.002", "-o", path, "--overwrite"], capsys)[0] == 0
    )


def test_export_without_onnx_says_what_to_install(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    path = tmp_path / "model.onnx"
    status, _, err = run_main(export, [run_dir, "--run", "lr=0.008", "-o", path], capsys)
    assert status == 1 and "pip install 'jaxsoftmax[export]'" in err and not path.exists()


def test_the_readme_numpy_snippet_runs_on_an_npz_export(run_dir, mnist, tmp_path, capsys):
    """README's ten lines, run as written on the exported arrays and an IDX test file."""
    path = tmp_path / "model.npz"
    assert run_main(export, [run_dir, "--run", "lr=0.005", "--format", "npz", "-o", path],
                    capsys)[0] == 0  # fmt: skip
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("```python\n# model.npz: ")[1].split("```")[0]
    images = mnist.test_images[:100]
    namespace = {"images": images}
    exec("# model.npz: " + snippet.replace("model.npz", str(path)), namespace)
    expected = js.load_run(run_dir)["lr=0.005"].predict(images)
    np.testing.assert_array_equal(namespace["predicted"], expected)
    assert namespace["names"][expected[0]] == str(expected[0])


def test_confusion_matrices_and_class_accuracy_match_numpy(run_dir, mnist):
    document = json.loads((run_dir / "results.json").read_text())
    counts = np.bincount(mnist.test_labels, minlength=10)
    for index, run in enumerate(document["runs"]):
        matrix = np.array(run["confusion_matrix"])
        np.testing.assert_array_equal(matrix.sum(axis=1), counts)
        predicted = numpy_predictions(run_dir, index, mnist.test_images)
        expected = np.zeros((10, 10), int)
        np.add.at(expected, (mnist.test_labels, predicted), 1)
        # float32 on the device against float64 here: an image on a tie may move.
        assert np.abs(matrix - expected).sum() <= 4
        truth = [(predicted[mnist.test_labels == c] == c).mean() for c in range(10)]
        np.testing.assert_allclose(run["class_accuracy"], truth, atol=2e-3)
        assert np.trace(matrix) / matrix.sum() == pytest.approx(run["test_accuracy"], abs=1e-6)


def test_tensorboard_reads_the_confusion_matrix_and_misclassified_images(run_dir, mnist):
    events = EventAccumulator(str(run_dir / "lr=0.005"), size_guidance={"images": 0})
    events.Reload()
    assert {"confusion_matrix", "misclassified"} <= set(events.Tags()["images"])
    for tag in ("confusion_matrix", "misclassified"):
        (image,) = events.Images(tag)
        assert image.step == 200 and image.width > 300 and image.height > 300
    # The images shown are errors, the most confident first, as NumPy finds them.
    from jaxsoftmax.outputs import analysis

    model = js.load_run(run_dir)["lr=0.005"]
    probabilities = model.predict_proba(mnist.test_images)
    wrong = probabilities.argmax(axis=1) != mnist.test_labels
    confidence = np.where(wrong, probabilities.max(axis=1), -1)
    top = np.sort(confidence)[::-1][: analysis.EXAMPLES]
    result = js.SweepResult(
        config=js.SweepConfig(learning_rates=(0.005,), steps=1, eval_every=1), params={
            "w": model.w[None], "b": model.b[None]},
        train_loss=np.zeros((1, 1)), train_accuracy=np.zeros((1, 1)), eval_steps=np.array([1]),
        test_loss=np.zeros((1, 1)), test_accuracy=np.full((1, 1), 0.9), compile_s=0, train_s=0,
    )  # fmt: skip
    found = analysis.analyse(result, mnist, [0])[0]
    assert (probabilities.argmax(axis=1)[found.examples] != mnist.test_labels[found.examples]).all()
    np.testing.assert_allclose(found.confidence, top, atol=1e-5)


def test_the_latency_benchmark_times_fresh_processes(run_dir, mnist_dir, tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks import predict_latency

    argv = ["--logdir", str(run_dir), "--repeats", "2", "--data-dir", str(mnist_dir)]
    document = predict_latency.main([*argv, "--out", str(tmp_path)])
    assert json.loads((tmp_path / "predict_latency.json").read_text()) == document
    assert len(document["seconds"]) == 2 and document["median_s"] > 0
    assert document["output"].endswith("%)") and ": 7 (" in document["output"]


def test_a_searchs_best_on_validation_is_its_choice_and_other_metrics_rank_every_finalist():
    """The best-model rule on a hand-made search record: validation accuracy takes the
    search's own choice; any other metric ranks the trials that took every step and did
    not diverge (here trial a, though b was chosen and c would rank first unfinished)."""
    from jaxsoftmax.trained.run import TrainedRun

    def trial(name, steps, train_loss, validation_accuracy, diverged=False):
        return {"name": name, "steps": steps, "train_loss": train_loss,
                "validation_accuracy": validation_accuracy, "diverged": diverged}  # fmt: skip

    results = {
        "runs": [trial("a", 36, 10.0, 0.90), trial("b", 36, 20.0, 0.95),
                 trial("c", 12, 5.0, 0.99), trial("d", 36, 1.0, 0.97, diverged=True)],
        "search": {"chosen": "b"},
        "data": {"image_shape": [2, 2], "class_names": ["x", "y"]},
    }  # fmt: skip
    params = {"w": np.zeros((4, 4, 2), np.float32), "b": np.zeros((4, 2), np.float32)}
    run = TrainedRun(REPO, results, params)
    assert run.best().name == "b"
    assert run.best("train_loss").name == "a"
    del results["search"]  # without a search: the best finished, healthy validation accuracy
    assert run.best().name == "b"
