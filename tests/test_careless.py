"""What a new user trips over (issue 27, item 8): every answer is a command's own."""

import subprocess
import sys

import pytest

import jaxsoftmax as js
from jaxsoftmax.cli import commands

from .conftest import REPO, shared_datasets_dir


def test_the_package_lists_its_commands_and_runs_one_by_name(capsys):
    assert commands.main([]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in ("train", "predict", "export", "report"))
    assert commands.main(["--version"]) == 0
    assert capsys.readouterr().out == f"jaxsoftmax {js.__version__}\n"
    assert commands.main(["trian"]) == 2
    assert "no command 'trian'; the commands are train" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        commands.main(["predict", "--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"jaxsoftmax {js.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "jaxsoftmax"], capture_output=True, text=True,
                          cwd=REPO)  # fmt: skip
    assert done.returncode == 0 and "python -m jaxsoftmax COMMAND" in done.stdout


@pytest.mark.parametrize("command", ["train", "predict", "export", "report"])
def test_every_command_says_its_version(command):
    done = subprocess.run([sys.executable, "-m", f"jaxsoftmax.{command}", "--version"],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"jaxsoftmax {js.__version__}\n"), done.stderr


def test_the_folder_of_datasets_is_taken_for_the_dataset_inside_it(tmp_path):
    """`--data-dir ../shared/datasets` (the folder JAXSOFTMAX_DATA_DIR takes) said
    'missing IDX file(s)'."""
    found = js.load_dataset("mnist", data_dir=shared_datasets_dir())
    assert found.train_images.shape == (60000, 28, 28)
    (tmp_path / "mine").symlink_to((shared_datasets_dir() / "fashion_mnist").resolve())
    with pytest.raises(js.DataError, match="it holds mine: give the one to use"):
        js.load_dataset("mnist", data_dir=tmp_path)


def test_a_runs_repr_is_one_short_line(logged_run):
    logdir, record = logged_run
    text = repr(js.load_run(logdir))
    assert text.count("\n") == 0 and len(text) < 200 and record["runs"][0]["name"] in text


def test_predict_on_a_folder_of_runs_names_the_runs_inside(logged_run, tmp_path, capsys):
    """`predict runs/softmax` (the parent of runs) suggested training one."""
    import shutil

    from jaxsoftmax.cli import predict

    logdir, _ = logged_run
    for stamp in ("20261201-101500", "20261202-090000"):
        shutil.copytree(logdir, tmp_path / stamp, ignore=shutil.ignore_patterns(".jaxsoftmax.lock"))
    status = predict.main([str(tmp_path), str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "holds runs, not a run: give one of them, e.g. 20261201-101500, 20261202-090000" in err


def test_the_predicted_class_is_one_rule_everywhere(mnist_dir, mnist, tmp_path, capsys):
    """lr=1e-20: logits differ by ~1e-17 and the probabilities round to a uniform 0.1.
    results.json's accuracy, its confusion matrix, `predict` (API and command line) and
    the ONNX `label` all pick the largest logit (ties: the lowest class); the argmax of
    the probabilities (what the command line ranked by before) does not."""
    import json

    import jax
    import numpy as np

    from jaxsoftmax.cli import export, predict
    from jaxsoftmax.cli import train as cli

    from .test_trained import run_main

    logdir = tmp_path / "run"
    argv = ["--learning-rates", "1e-20", "--steps", "50", "--data-dir", mnist_dir, "--quiet"]
    assert cli.main([*map(str, argv), "--no-summaries", "--logdir", str(logdir)]) == 0
    run = json.loads((logdir / "results.json").read_text())["runs"][0]
    model = js.load_run(logdir)["lr=1e-20"]
    classes = model.predict(mnist.test_images)
    accuracy = (classes == mnist.test_labels).mean()
    # Exact on CPU; a GPU's default float32 products (TF32) may break near-ties otherwise.
    exact = 1e-6 if jax.default_backend() == "cpu" else 2e-4
    assert accuracy == pytest.approx(run["test_accuracy"], abs=exact) and accuracy > 0.5
    assert np.trace(run["confusion_matrix"]) == (classes == mnist.test_labels).sum()
    assert (model.predict_proba(mnist.test_images).argmax(1) == mnist.test_labels).mean() < 0.2
    np.save(tmp_path / "first.npy", mnist.test_images[:300])
    status, out, err = run_main(predict, [logdir, "--json", tmp_path / "first.npy"], capsys)
    assert status == 0, err
    shown = [row["top"][0]["class"] for row in json.loads(out)["predictions"]]
    np.testing.assert_array_equal(shown, classes[:300])
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    status, _, err = run_main(export, [logdir, "-o", tmp_path / "m.onnx"], capsys)
    assert status == 0, err
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    np.testing.assert_array_equal(session.run(["label"], {"images": mnist.test_images})[0],
                                  classes)  # fmt: skip


def test_the_clones_folder_does_not_shadow_the_installed_package(tmp_path):
    """Python started in the folder holding the clone (named jaxsoftmax, as `git clone`
    names it) imported the clone's folder as an empty namespace package ('no attribute
    load_run'): with the src layout the clone's root holds no package to shadow with."""
    (tmp_path / "jaxsoftmax").symlink_to(REPO)
    for command in (["-c", "import jaxsoftmax; print(jaxsoftmax.load_run.__name__)"],
                    ["-m", "jaxsoftmax.train", "--version"]):  # fmt: skip
        done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                              cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0 and done.stdout.split()[-1] in ("load_run", js.__version__), (
            done.stderr
        )


def test_the_ranked_classes_begin_with_the_predicted_one():
    """`predict` lists classes by `host.ranked` and counts accuracy by `host.predicted`:
    the first ranked class is the predicted one, with ties, infinities and NaN."""
    import numpy as np

    from jaxsoftmax.core import host

    rng = np.random.default_rng(0)
    logits = rng.choice([-np.inf, -1.0, 0.0, 1e-20, 1.0, np.inf, np.nan], size=(5000, 6))
    ranked = host.ranked(logits, 6)
    np.testing.assert_array_equal(ranked[:, 0], host.predicted(logits))
    assert (np.sort(ranked, axis=1) == np.arange(6)).all()  # each class once
    finite = np.isfinite(logits).all(axis=1)
    ordered = np.take_along_axis(logits[finite], ranked[finite], axis=1)
    assert (np.diff(ordered, axis=1) <= 0).all()  # most likely first
