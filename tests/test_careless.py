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
