"""The command line: real runs on real MNIST, results.json, events, and user mistakes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jaxsoftmax.cli import train as cli

SHORT_RUN = ["--steps", "30", "--eval-every", "10", "--no-compilation-cache"]


def run_main(argv, capsys):
    """Runs the command line in this process; returns (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def scalars(run_dir, tag):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_a_short_run_writes_results_events_and_a_table(env, tmp_path, capsys):
    logdir = tmp_path / "run"
    status, out, err = run_main(
        [*SHORT_RUN, "--learning-rates", "0.005,0.01", "--logdir", str(logdir)], capsys
    )
    assert status == 0, err
    document = json.loads((logdir / "results.json").read_text())
    assert document["config"]["learning_rates"] == [0.005, 0.01]
    assert document["config"]["steps"] == 30 and document["config"]["dataset"] == "mnist"
    assert [run["learning_rate"] for run in document["runs"]] == [0.005, 0.01]
    for run in document["runs"]:
        assert set(run) == {
            *("name", "learning_rate", "seed", "weight_decay", "momentum"),
            *("test_accuracy", "test_loss", "train_loss", "steps", "diverged"),
            *("confusion_matrix", "class_accuracy"),
        }
        assert 0.8 < run["test_accuracy"] < 1 and run["steps"] == 30 and not run["diverged"]
    assert document["interrupted"] is False
    assert set(document["timing"]) == {"import_s", "load_s", "compile_s", "train_s", "total_s"}
    assert document["timing"]["total_s"] >= document["timing"]["train_s"] > 0
    # The table and the TensorBoard hint.
    assert [run["name"] for run in document["runs"]] == ["lr=0.005", "lr=0.01"]
    assert "lr=0.01 " in out and f"{document['runs'][1]['test_accuracy']:.2%}" in out
    assert f"tensorboard --logdir {logdir}" in out
    # Events hold every training step and evaluation; the last test accuracy is results.json's.
    train = scalars(logdir / "lr=0.01" / "train", "train/loss")
    test = scalars(logdir / "lr=0.01" / "test", "test/accuracy")
    assert [step for step, _ in train] == list(range(1, 31))
    assert [step for step, _ in test] == [10, 20, 30]
    assert test[-1][1] == pytest.approx(document["runs"][1]["test_accuracy"], abs=1e-6)
    assert train[0][1] == pytest.approx(100 * np.log(10), rel=1e-5)


def test_default_logdir_is_new_per_run(env, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run_main([*SHORT_RUN, "--quiet", "--steps", "5"], capsys)
    second = run_main([*SHORT_RUN, "--quiet", "--steps", "5"], capsys)
    assert first[0] == second[0] == 0
    assert first[1] == "" and first[2] == ""  # --quiet prints nothing
    runs = sorted((tmp_path / "runs" / "softmax").iterdir())
    assert len(runs) == 2 and all((run / "results.json").is_file() for run in runs)


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--learning-rates", "-1"], 2, "learning rate -1 is not a positive finite number"),
        (["--learning-rates", "0.1,abc"], 2, "'abc' is not a number"),
        (["--learning-rates", ""], 2, "empty value"),
        (["--learning-rates", "0.1,,0.2"], 2, "empty value"),
        (["--learning-rates", "inf"], 2, "positive finite"),
        (["--learning-rates", "1e400"], 2, "positive finite"),
        (["--learning-rates", "0.1,1e-1"], 2, "lists a value twice"),
        (["--steps", "0"], 2, "steps must be a whole number >= 1, got 0"),
        (["--steps", "1.5"], 2, "'1.5' is not a whole number"),
        (["--batch-size", "x"], 2, "not a whole number"),
        (["--eval-every", "0"], 2, "eval_every must be a whole number >= 1"),
        (["--loss-scale", "nan"], 2, "loss_scale nan is not a positive finite number"),
        (["--init-scale", "-1"], 2, "init_scale -1 must be finite and >= 0"),
        (["--seed", "2147483648"], 2, "outside [-2**31, 2**31)"),
        (["--checkpoint-every", "0"], 2, "--checkpoint-every must be a whole number >= 1"),
        (["--process-id", "-1"], 2, "--process-id must be a whole number >= 0"),
        (["--source", "csv"], 2, "invalid choice"),
        (["--schedule", "linear"], 2, "invalid choice"),
        (["--batch-size", "60001"], 2, "larger than the training set"),
        (["--dataset", "cifar"], 1, "unknown dataset 'cifar'"),
        (["--data-dir", "/nonexistent/folder"], 1, "missing IDX file"),
    ],
)
def test_user_mistakes_give_one_line_and_an_exit_status(
    env, tmp_path, capsys, argv, status, message
):
    got, _, err = run_main(
        [*SHORT_RUN, "--quiet", "--logdir", str(tmp_path / "log"), *argv], capsys
    )
    assert got == status
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_a_logdir_holding_a_run_is_refused_unless_overwrite(env, tmp_path, capsys):
    logdir = tmp_path / "log"
    argv = [*SHORT_RUN, "--quiet", "--steps", "5", "--logdir", str(logdir)]
    assert run_main(argv, capsys)[0] == 0
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "already holds a run" in err and "--overwrite" in err
    (logdir / "figures").mkdir()  # as python -m jaxsoftmax.report leaves it
    assert run_main([*argv, "--overwrite", "--learning-rates", "0.3"], capsys)[0] == 0
    assert sorted(p.name for p in logdir.glob("lr=*")) == ["lr=0.3"]
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1  # one graph, one input image
    assert not (logdir / "figures").exists()


def test_unwritable_logdir(env, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, _, err = run_main([*SHORT_RUN, "--quiet", "--logdir", str(blocker / "sub")], capsys)
    assert status == 2 and "not writable" in err and len(err.strip().splitlines()) == 1


def test_help_explains_the_flags(capsys):
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    flags = "--learning-rates --steps --batch-size --eval-every --loss-scale --seed --dataset"
    for flag in [*flags.split(), "--data-dir", "--source", "--logdir", "--quiet"]:
        assert flag in out
    assert "lr 0.5 on plain mean cross-entropy" in " ".join(out.split())


def test_module_and_console_script_run_and_fill_the_compilation_cache(cli_env, tmp_path):
    logdir = tmp_path / "run"
    command = [sys.executable, "-m", "jaxsoftmax.train", "--steps", "20", "--logdir", str(logdir)]
    done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "view in TensorBoard" in done.stdout
    cache = tmp_path / "cache" / "jaxsoftmax" / "jax"
    assert any(cache.iterdir()), "the persistent compilation cache stayed empty"
    script = os.path.join(os.path.dirname(sys.executable), "jaxsoftmax-train")
    done = subprocess.run(
        [script, "--learning-rates", "nope"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_a_refused_run_writes_nothing(env, tmp_path, capsys):
    logdir = tmp_path / "log"
    status, _, _ = run_main([*SHORT_RUN, "--batch-size", "60001", "--logdir", str(logdir)], capsys)
    assert status == 2 and not logdir.exists()


def test_a_folder_that_cannot_be_created_is_one_line(env, tmp_path, capsys, monkeypatch):
    # Tests run as root, which permissions do not stop: a file stands where a folder must go.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    status, _, err = run_main([*SHORT_RUN, "--quiet", "--steps", "5"], capsys)
    assert status == 2 and "cannot create a log directory" in err and "--logdir" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unusable_compilation_cache_is_a_warning(env, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    argv = ["--steps", "5", "--quiet", "--logdir", str(tmp_path / "log")]
    argv += ["--data-dir", os.path.join(env["JAXSOFTMAX_DATA_DIR"], "mnist")]
    status, _, err = run_main(argv, capsys)
    assert status == 0 and err.startswith("warning: no compilation cache")


def test_help_gives_each_default_once_and_none_that_means_nothing(capsys):
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    text = " ".join(out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    for flag, default in [
        ("--steps", "1000"), ("--seed", "0"), ("--init-scale", "0.0"), ("--eval-every", "10"),
        ("--checkpoint-every", "1000"), ("--source", "idx"),
    ]:  # fmt: skip
        section = text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert section.count("(default:") == 1 and f"(default: {default})" in section, flag
    for flag in ("--learning-rates", "--logdir", "--max-models-per-program N", "--dataset"):
        section = text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert section.count("default") == 1, (flag, section)  # said in words, once


def test_the_table_stays_aligned_with_huge_and_missing_values():
    from jaxsoftmax.sweep import config, results

    cfg = config.SweepConfig(learning_rates=(0.005, 1e6, 1e37), steps=2, eval_every=1)
    result = results.SweepResult(
        config=cfg,
        params=None,
        train_loss=np.array([[230.3, 230.3, 230.3], [45.2, 2385836800.0, np.nan]], np.float32),
        train_accuracy=np.zeros((2, 3), np.float32),
        eval_steps=cfg.eval_steps,
        test_loss=np.array([[30.5, 2.1e12, np.inf]] * 2, np.float32),
        test_accuracy=np.array([[0.9146, 0.098, np.nan]] * 2, np.float32),
        compile_s=0.0,
        train_s=0.0,
        diverged_at=np.array([0, 2, 2]),
    )
    lines = results.format_table(result).splitlines()
    header, rows = lines[0], lines[2:]
    for column in ("train loss", "test loss", "test accuracy"):
        end = header.index(column) + len(column)
        for row in rows:  # every value ends where its column's title ends
            assert row[end - 1] != " " and (len(row) == end or row[end] == " "), (column, row)
    assert "2.386e+09" in rows[1] and "2.100e+12" in rows[1] and "91.46%" in rows[0]
    assert rows[2].split()[1:4] == ["-", "-", "-"]


def test_results_carry_the_digits_float32_has(env, tmp_path, capsys):
    logdir = tmp_path / "run"
    status, _, err = run_main([*SHORT_RUN, "--quiet", "--logdir", str(logdir)], capsys)
    assert status == 0, err
    text = (logdir / "results.json").read_text()
    for run in json.loads(text)["runs"]:
        for key in ("test_accuracy", "test_loss", "train_loss"):
            value = run[key]
            assert value == float(f"{value:.7g}") and len(repr(value)) <= 11, (key, value)
            assert value == pytest.approx(float(np.float32(value)), rel=1e-7)


def test_labels_beyond_the_datasets_classes_are_one_line_and_nothing_is_written(
    env, tmp_path, capsys, mnist
):
    from jaxsoftmax.data import catalog
    from tests.test_idx import idx_bytes

    folder = tmp_path / "mnist"
    folder.mkdir()
    labels = np.random.default_rng(0).integers(0, 256, 1000).astype(np.uint8)  # random bytes
    for name, array in {
        catalog.TRAIN_IMAGES: mnist.train_images[:1000],
        catalog.TRAIN_LABELS: labels,
        catalog.TEST_IMAGES: mnist.test_images[:100],
        catalog.TEST_LABELS: mnist.test_labels[:100].astype(np.uint8),
    }.items():
        (folder / name).write_bytes(idx_bytes(array))
    logdir = tmp_path / "run"
    status, _, err = run_main(
        [*SHORT_RUN, "--data-dir", str(folder), "--logdir", str(logdir)], capsys
    )
    assert status == 1 and err.count("\n") == 1 and "outside the 10 classes of mnist" in err
    assert "--num-classes" in err and not logdir.exists()
    # Told the count, it trains: 256 classes, the labels as given.
    argv = [*SHORT_RUN, "--data-dir", str(folder), "--num-classes", "256", "--quiet",
            "--no-summaries"]  # fmt: skip
    status, _, err = run_main([*argv, "--logdir", str(logdir)], capsys)
    assert status == 0, err
    assert json.loads((logdir / "results.json").read_text())["config"]["dataset"] == "mnist"


def test_a_forced_layout_is_the_runs_and_gives_the_same_models(env, tmp_path, capsys):
    from jaxsoftmax.sweep import checkpoint

    accuracy, weights = {}, {}
    for layout in ("class_major", "feature_major"):
        logdir = tmp_path / layout
        argv = [*SHORT_RUN, "--quiet", "--no-summaries", "--layout", layout]
        assert run_main([*argv, "--logdir", str(logdir)], capsys)[0] == 0
        saved, _ = checkpoint.load(logdir / checkpoint.CHECKPOINT_FILE)
        assert saved.plan.layout == layout
        weights[layout] = saved.progress.params["w"]  # models-first in either layout
        document = json.loads((logdir / "results.json").read_text())
        assert document["layout"] == layout
        accuracy[layout] = np.array([run["test_accuracy"] for run in document["runs"]])
    assert len(accuracy["class_major"]) == 3
    np.testing.assert_allclose(weights["class_major"], weights["feature_major"], atol=1e-6)
    np.testing.assert_allclose(accuracy["class_major"], accuracy["feature_major"], atol=1e-6)


def test_layout_choices_are_the_plans():
    from jaxsoftmax.cli import settings
    from jaxsoftmax.sweep import plan

    assert (plan.AUTO, *plan.LAYOUTS) == settings.LAYOUT_CHOICES


def test_library_errors_name_the_commands_flags():
    """The library names a parameter `name` (or `name`=VALUE); a command says its flag."""
    from jaxsoftmax.cli import common, train

    message = "give `validation`=N, a smaller `batch_size` or `data_dir`=DIR; `unknown` stays"
    assert common.in_flags(message, train.build_parser()) == (
        "give --validation N, a smaller --batch-size or --data-dir DIR; `unknown` stays"
    )
    assert common.in_flags(message, None) == message
