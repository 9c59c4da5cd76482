"""Reliability: divergence, checkpoints, interruption and resume, on real MNIST."""

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jaxsoftmax.cli import train as cli
from jaxsoftmax.data import catalog
from jaxsoftmax.errors import CheckpointError
from jaxsoftmax.sweep import checkpoint, divergence
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.train import train_sweep
from tests.test_cli import run_main
from tests.test_grid import _free_port
from tests.test_idx import idx_bytes

QUICK = ["--no-compilation-cache", "--quiet"]


def strict_json(path):
    """results.json, refusing NaN and Infinity (which are not JSON)."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def accumulator(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def small_dir(mnist, tmp_path_factory):
    """2,000 real training and 1,000 real test images as IDX files, for fast subprocesses."""
    folder = tmp_path_factory.mktemp("small-mnist")
    arrays = {
        catalog.TRAIN_IMAGES: mnist.train_images[:2000],
        catalog.TRAIN_LABELS: mnist.train_labels[:2000].astype(np.uint8),
        catalog.TEST_IMAGES: mnist.test_images[:1000],
        catalog.TEST_LABELS: mnist.test_labels[:1000].astype(np.uint8),
    }
    for name, array in arrays.items():
        (folder / name).write_bytes(idx_bytes(array))
    return folder


# --- divergence -------------------------------------------------------------------------


def reference_divergence(train_loss, test_loss, eval_steps, params_finite_at, window):
    """The documented rule, one model at a time over the whole history (the oracle).

    train_loss: (steps, K); test_loss: (E, K) at eval_steps; params_finite_at: (steps, K)
    whether the parameters after each step are finite (checked at chunk ends only).
    """
    steps, num_models = train_loss.shape
    found = np.zeros(num_models, np.int64)
    for k in range(num_models):
        candidates = []
        start = train_loss[0, k]
        run = 0
        for t in range(steps):
            loss = train_loss[t, k]
            if not np.isfinite(loss):
                candidates.append(t + 1)
            high = (not np.isfinite(loss)) or loss > divergence.FACTOR * start
            run = run + 1 if high else 0
            if run == window:
                candidates.append(t + 1 - window + 1)
            if not params_finite_at[t, k]:
                candidates.append(t + 1)
        for e, step in enumerate(eval_steps):
            if not np.isfinite(test_loss[e, k]):
                candidates.append(int(step))
        found[k] = min(candidates) if candidates else 0
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_divergence_rule_matches_a_per_model_loop(data):
    steps = data.draw(st.integers(2, 24))
    num_models = data.draw(st.integers(1, 5))
    window = data.draw(st.integers(1, 6))
    kinds = st.sampled_from([1.0, 2.0, 50.0, np.nan, np.inf])
    train = np.array(
        data.draw(st.lists(kinds, min_size=steps * num_models, max_size=steps * num_models)),
        np.float32,
    ).reshape(steps, num_models)
    train[0] = np.where(np.isfinite(train[0]), 1.0, train[0])
    # Chunk ends and the evaluations in each chunk (at its end, as train_sweep does).
    cuts = sorted(set(data.draw(st.lists(st.integers(1, steps - 1), max_size=4))) | {steps})
    test = np.where(data.draw(st.booleans()), train[np.array(cuts) - 1], 1.0)
    finite_at = np.ones((steps, num_models), bool)
    broken = data.draw(st.lists(st.tuples(st.sampled_from(cuts), st.integers(0, num_models - 1))))
    for step, k in broken:
        finite_at[step - 1, k] = False

    diverged, high = np.zeros(num_models, np.int64), np.zeros(num_models, np.int64)
    begin = 0
    for index, end in enumerate(cuts):
        diverged, high = divergence.update(
            diverged,
            high,
            train[0],
            steps=np.arange(begin + 1, end + 1),
            train_loss=train[begin:end],
            eval_steps=np.array([end]),
            eval_loss=test[index : index + 1],
            params_finite=finite_at[end - 1],
            window=window,
        )
        begin = end
    # Chunk by chunk, the earliest step is kept; the oracle sees all at once.
    expected = reference_divergence(train, test, np.array(cuts), finite_at, window)
    np.testing.assert_array_equal(diverged, expected)


def test_huge_learning_rates_are_marked_and_the_others_are_unaffected(small):
    config = SweepConfig(learning_rates=(0.005, 1e6, 1e37), steps=30, eval_every=10)
    result = train_sweep(small, config)
    alone = train_sweep(small, SweepConfig(learning_rates=(0.005,), steps=30, eval_every=10))
    # lr 1e6: the loss explodes (1e9 against 230) while the weights stay finite.
    assert result.train_loss[1:, 1].min() > 1e6 and np.isfinite(result.params["w"][1]).all()
    # lr 1e37: the weights overflow.
    assert not np.isfinite(result.params["w"][2]).all()
    assert result.diverged_at.tolist() == [0, 2, 2]
    runs = result.runs()
    assert [run["diverged"] for run in runs] == [False, True, True]
    assert runs[2]["test_loss"] is None and runs[0]["test_accuracy"] > 0.8
    for name in ("w", "b"):
        np.testing.assert_allclose(result.params[name][0], alone.params[name][0], atol=1e-6)
    np.testing.assert_allclose(result.test_accuracy[:, 0], alone.test_accuracy[:, 0], atol=1e-6)


def test_tutorial_learning_rates_and_lone_spikes_are_not_divergence(small):
    # lr 0.05 on the tutorial's loss has lone batches at over 10x the first loss.
    config = SweepConfig(learning_rates=(0.002, 0.008, 0.05), steps=200, eval_every=1)
    result = train_sweep(small, config)
    assert (result.train_loss[:, 2] > divergence.FACTOR * result.train_loss[0, 2]).any()
    assert result.diverged_at.tolist() == [0, 0, 0]


def test_command_line_marks_divergence_everywhere_and_exits_zero(env, tmp_path, capsys):
    logdir = tmp_path / "run"
    argv = ["--learning-rates", "0.005,1e6,1e17,1e37", "--steps", "30", "--eval-every", "10"]
    status, out, err = run_main([*argv, "--no-compilation-cache", "--logdir", str(logdir)], capsys)
    assert status == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning == [
        "warning: 3 of 4 models diverged: lr=1e6 at step 2, lr=1e17 at step 2, lr=1e37 at "
        "step 2 (marked in results.json; try smaller learning rates)"
    ]
    document = strict_json(logdir / "results.json")
    runs = {run["name"]: run for run in document["runs"]}
    assert runs["lr=0.005"]["diverged"] is False and "diverged_at_step" not in runs["lr=0.005"]
    assert runs["lr=1e6"]["diverged_at_step"] == 2 and runs["lr=1e37"]["diverged_at_step"] == 2
    assert runs["lr=1e37"]["test_loss"] is None
    assert "lr=1e37" in out and "diverged at step 2" in out
    # TensorBoard: the healthy run has its pictures; the overflowed one none, and says why.
    healthy, broken = accumulator(logdir / "lr=0.005"), accumulator(logdir / "lr=1e37")
    assert len(healthy.Histograms("weights")) == 3
    assert "weights" not in broken.Tags()["histograms"]
    assert "weights" not in accumulator(logdir / "lr=1e37" / "train").Tags()["images"]
    assert broken.Scalars("hparams/diverged")[-1].value == 1
    assert healthy.Scalars("hparams/diverged")[-1].value == 0
    text = broken.Tensors("diverged/text_summary")[0]
    assert text.step == 2 and b"diverged at step 2" in text.tensor_proto.string_val[0]
    for run in runs:
        for split in ("", "train", "test"):
            events = accumulator(logdir / run / split)
            for tag in events.Tags()["scalars"]:
                assert np.isfinite([event.value for event in events.Scalars(tag)]).all()
            for tag in events.Tags()["histograms"]:
                for event in events.Histograms(tag):
                    value = event.histogram_value
                    fields = (value.min, value.max, value.sum, value.sum_squares)
                    assert np.isfinite([*fields, *value.bucket_limit]).all(), (run, tag)
    # A NaN loss leaves a gap: the overflowed run's test loss is never written.
    assert "test/loss" not in accumulator(logdir / "lr=1e37" / "test").Tags()["scalars"]


# --- checkpoints --------------------------------------------------------------------------


def test_checkpoints_resume_bitwise_across_slices_and_survive_the_disk(small, tmp_path):
    config = SweepConfig(
        learning_rates=(0.002, 0.008), seeds=(0, 1, 2), momenta=(0.0, 0.9),
        steps=60, eval_every=10, chunk_steps=20, init_scale=0.01,
    )  # fmt: skip
    whole = train_sweep(small, config, max_models_per_program=4)
    saved, asked = [], iter(range(100))
    stopped = train_sweep(
        small, config, max_models_per_program=4, checkpoint_every=30,
        on_checkpoint=lambda state: checkpoint.save(tmp_path / f"{len(saved)}.npz", state)
        or saved.append((state.slice_index, state.step)),
        should_stop=lambda: next(asked) == 3,
    )  # fmt: skip
    # Steps counted over slices: 40 (>= 30), 60 = slice 0 done (>= 60), then stopped at 20.
    assert saved == [(0, 40), (1, 0), (1, 20)]
    assert stopped.interrupted and stopped.steps_done.tolist() == [60] * 4 + [20] * 4 + [0] * 4
    assert np.isnan(stopped.test_accuracy[:, 8:]).all()
    kept = []
    train_sweep(small, config, max_models_per_program=4, checkpoint_every=30,
                on_checkpoint=kept.append)  # fmt: skip
    loaded = [checkpoint.load(tmp_path / f"{index}.npz") for index in range(len(saved))]
    assert all(extra == {} for _, extra in loaded)
    # Checkpoints kept in memory (their metrics filled on by training) resume alike.
    for state in [state for state, _ in loaded] + kept[:2]:
        resumed = train_sweep(small, config, resume=state)
        assert not resumed.interrupted
        for name in ("w", "b"):
            np.testing.assert_array_equal(resumed.params[name], whole.params[name])
        np.testing.assert_array_equal(resumed.train_loss, whole.train_loss)
        np.testing.assert_array_equal(resumed.test_accuracy, whole.test_accuracy)


def test_a_checkpoint_of_other_settings_is_refused(small, tmp_path):
    states = []
    config = SweepConfig(learning_rates=(0.002,), steps=20, eval_every=10)
    train_sweep(small, config, checkpoint_every=10, on_checkpoint=states.append)
    with pytest.raises(CheckpointError, match="other settings"):
        train_sweep(small, SweepConfig(learning_rates=(0.003,), steps=20), resume=states[0])


def damaged_copies(good: bytes):
    yield "empty", b""
    yield "cut in half", good[: len(good) // 2]
    yield "not a zip", b"PK\x03\x04" + bytes(100)
    middle = len(good) // 2
    yield "a byte changed", good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :]


@pytest.fixture(scope="module")
def good_checkpoint(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / checkpoint.CHECKPOINT_FILE
    config = SweepConfig(learning_rates=(0.002, 0.005), steps=20, eval_every=10)
    train_sweep(small, config, on_checkpoint=lambda state: checkpoint.save(path, state))
    return path.read_bytes()


def test_damaged_checkpoints_give_one_error(good_checkpoint, tmp_path):
    for label, content in damaged_copies(good_checkpoint):
        path = tmp_path / f"{label}.npz"
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as error:
            checkpoint.load(path)
        assert "\n" not in str(error.value), label


def test_a_checkpoint_whose_parts_disagree_names_them(good_checkpoint, tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(good_checkpoint)
    good, extra = checkpoint.load(path)
    progress = dataclasses.replace(good.progress, diverged_at=good.progress.diverged_at[:1])
    wrong = dataclasses.replace(good, progress=progress, slice_index=-1)
    checkpoint.save(path, wrong, extra)

    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == (
        f"checkpoint {path} is damaged: diverged_at, slice do not fit its settings"
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutated_checkpoint_is_the_same_checkpoint_or_a_checkpoint_error(
    good_checkpoint, tmp_path_factory, data
):
    content = bytearray(good_checkpoint)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(content)))
    path = tmp_path_factory.mktemp("mutated") / "c.npz"
    path.write_bytes(bytes(content[:cut]))
    try:
        loaded, extra = checkpoint.load(path)
    except CheckpointError as error:
        assert "\n" not in str(error)
        return
    # The archive's checksums let no change to the content through: what loads is the
    # original checkpoint (a change to, say, a file's timestamp in the archive loads).
    original = tmp_path_factory.mktemp("original") / "c.npz"
    original.write_bytes(good_checkpoint)
    expected, expected_extra = checkpoint.load(original)
    assert loaded.inconsistencies() == [] and extra == expected_extra
    assert (loaded.config, loaded.plan) == (expected.config, expected.plan)
    assert (loaded.slice_index, loaded.step) == (expected.slice_index, expected.step)
    for name in ("train_loss", "test_accuracy", "steps_done", "diverged_at"):
        np.testing.assert_array_equal(
            getattr(loaded.progress, name), getattr(expected.progress, name)
        )


@pytest.mark.parametrize(
    "extra_argv, status, message",
    [
        (["--steps", "10"], 2, "--resume takes --steps from the checkpoint"),
        (["--grid", "seed=1,2"], 2, "--resume takes --grid from the checkpoint"),
        (["--layout", "feature_major"], 2, "--resume takes --layout from the checkpoint"),
    ],
)
def test_resume_refuses_settings_of_its_own(env, tmp_path, capsys, extra_argv, status, message):
    got, _, err = run_main(["--resume", str(tmp_path), *extra_argv], capsys)
    assert got == status and message in err and len(err.strip().splitlines()) == 1


def test_resume_mistakes_are_one_line(env, tmp_path, capsys, good_checkpoint):
    logdir = tmp_path / "done"
    argv = ["--learning-rates", "0.005", "--steps", "10", *QUICK, "--logdir", str(logdir)]
    assert run_main(argv, capsys)[0] == 0
    cases = [(tmp_path / "nowhere", 2, "no such folder"), (tmp_path, 1, "no checkpoint in")]
    cases.append((logdir, 2, "has finished; there is nothing to resume"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / checkpoint.CHECKPOINT_FILE).write_bytes(good_checkpoint[:1000])
    cases.append((broken, 1, "is damaged"))
    python_made = tmp_path / "python-made"
    python_made.mkdir()
    (python_made / checkpoint.CHECKPOINT_FILE).write_bytes(good_checkpoint)
    cases.append((python_made, 1, "not written by the command line"))
    for folder, status, message in cases:
        got, _, err = run_main(["--resume", str(folder), *QUICK], capsys)
        assert (got, len(err.strip().splitlines())) == (status, 1), err
        assert message in err and "Traceback" not in err
    # A finished run whose results.json was lost (a crash at the very end) gets it back.
    written = strict_json(logdir / "results.json")
    (logdir / "results.json").unlink()
    assert run_main(["--resume", str(logdir), *QUICK], capsys)[0] == 0
    assert strict_json(logdir / "results.json")["runs"] == written["runs"]
    # A new run is never mixed into a folder holding a checkpoint.
    got, _, err = run_main([*argv[:4], *QUICK, "--logdir", str(broken)], capsys)
    assert got == 2 and f"pass --overwrite, or --resume {broken} to go on with it" in err


# --- interruption and resume, for real -----------------------------------------------------


def start_training(argv, env):
    return subprocess.Popen(
        [sys.executable, "-m", "jaxsoftmax.train", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_after_a_checkpoint(process, path, signal_number, rng):
    """Waits for a new checkpoint at `path`, then sends the signal a random moment later."""
    before = path.stat().st_mtime_ns if path.exists() else None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.stat().st_mtime_ns != before:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.6))
    process.send_signal(signal_number)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return err


def test_sigint_and_sigterm_at_random_points_then_resume_bitwise(small_dir, cli_env, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    grid = "learning_rate=0.002,1e6 seed=0,1"  # lr 1e6 diverges at step 2
    argv = ["--grid", grid, "--steps", "6000", "--eval-every", "20", "--checkpoint-every", "400"]
    argv += ["--max-models-per-program", "2", "--data-dir", str(small_dir)]
    env = cli_env | {"PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference"
    assert cli.main([*argv, *QUICK, "--logdir", str(reference)]) == 0

    logdir = tmp_path / "stopped"
    path = logdir / checkpoint.CHECKPOINT_FILE
    process = start_training([*argv, "--logdir", str(logdir)], env)
    err = interrupt_after_a_checkpoint(process, path, signal.SIGINT, rng)
    assert process.returncode == 130, f"seed {seed}: {err}"
    assert f"--resume {logdir}" in err
    # In the progress bar's units: steps, counting both slices' (2 slices x 6000 steps).
    done_steps = re.search(r"interrupted after (\d+) of 12000 steps", err)
    assert done_steps and 0 < int(done_steps.group(1)) < 12000, err
    document = strict_json(logdir / "results.json")
    assert document["interrupted"] is True
    done = [run["steps"] for run in document["runs"]]
    assert min(done) < 6000, f"seed {seed}: {done}"

    process = start_training(["--resume", str(logdir)], env)
    err = interrupt_after_a_checkpoint(process, path, signal.SIGTERM, rng)
    assert process.returncode == 143, f"seed {seed}: {err}"
    assert strict_json(logdir / "results.json")["interrupted"] is True

    assert cli.main(["--resume", str(logdir), "--quiet", "--no-compilation-cache"]) == 0
    finished, expected = np.load(path), np.load(reference / checkpoint.CHECKPOINT_FILE)
    for name in ("params_w", "params_b", "train_loss", "test_accuracy"):
        np.testing.assert_array_equal(finished[name], expected[name], err_msg=f"seed {seed}")
    document, reference_document = (
        strict_json(folder / "results.json") for folder in (logdir, reference)
    )
    assert document["interrupted"] is False
    assert document["runs"] == reference_document["runs"]
    # TensorBoard shows every step once: what was logged after a checkpoint is purged.
    for run in document["runs"]:
        train = accumulator(logdir / run["name"] / "train").Scalars("train/loss")
        assert [event.step for event in train] == list(range(1, 6001)), f"seed {seed}"
        assert train[-1].value == pytest.approx(run["train_loss"], rel=1e-6)
        test = accumulator(logdir / run["name"] / "test").Scalars("test/accuracy")
        assert [event.step for event in test] == list(range(20, 6001, 20)), f"seed {seed}"
        notes = accumulator(logdir / run["name"]).Tags()["tensors"]
        if run["diverged"]:  # noted once, however often the run was resumed
            assert len(accumulator(logdir / run["name"]).Tensors("diverged/text_summary")) == 1
        else:
            assert "diverged/text_summary" not in notes


def write_rows_dataset(folder):
    """IDX files of 6x5 images in 3 classes (class c lights up row c): 600 to train, 100 to test."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=700).astype(np.uint8)
    images = (rng.random((700, 6, 5)) * 60).astype(np.uint8)
    images[np.arange(700), labels, :] = 255
    folder.mkdir()
    for name, array in {
        catalog.TRAIN_IMAGES: images[:600],
        catalog.TRAIN_LABELS: labels[:600],
        catalog.TEST_IMAGES: images[600:],
        catalog.TEST_LABELS: labels[600:],
    }.items():
        (folder / name).write_bytes(idx_bytes(array))
    return folder


def test_other_image_sizes_and_class_counts_train_from_the_command_line(
    tmp_path, capsys, monkeypatch
):
    folder = write_rows_dataset(tmp_path / "rows")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    logdir = tmp_path / "run"
    argv = ["--dataset", "rows", "--data-dir", str(folder), "--learning-rates", "0.05"]
    argv += ["--steps", "60", "--batch-size", "50", "--logdir", str(logdir), *QUICK]
    status, _, err = run_main(argv, capsys)
    assert status == 0, err
    run = strict_json(logdir / "results.json")["runs"][0]
    assert run["test_accuracy"] > 0.95
    images_logged = accumulator(logdir / "lr=0.05" / "train").Images("weights")
    assert images_logged and images_logged[-1].width > 0


def start_processes(argv, env, port):
    """Two jax.distributed processes (2 CPU devices each) on 127.0.0.1, running `argv`."""
    env = env | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    joined = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    return [start_training([*argv, *joined, "--process-id", str(index)], env) for index in range(2)]


def finish(processes):
    try:
        return [process.communicate(timeout=150)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()


def test_a_signal_to_one_process_stops_every_process_and_resume_goes_on(
    small_dir, cli_env, tmp_path
):
    argv = ["--grid", "learning_rate=0.002,0.005 seed=0,1 momentum=0,0.9", "--steps", "3000"]
    argv += ["--eval-every", "20", "--checkpoint-every", "200", "--data-dir", str(small_dir)]
    argv += ["--init-scale", "0.01", "--no-summaries", "--quiet"]
    reference, logdir = tmp_path / "reference", tmp_path / "stopped"
    errors = finish(start_processes([*argv, "--logdir", str(reference)], cli_env, _free_port()))
    processes = start_processes([*argv, "--logdir", str(logdir)], cli_env, _free_port())
    try:
        # SIGTERM to process 1 alone, once process 0 has saved a checkpoint.
        path, deadline = logdir / checkpoint.CHECKPOINT_FILE, time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        processes[1].send_signal(signal.SIGTERM)
    finally:
        errors += finish(processes)
    assert [process.returncode for process in processes] == [143, 143], errors
    assert strict_json(logdir / "results.json")["interrupted"] is True
    resumed = start_processes(["--resume", str(logdir), "--quiet"], cli_env, _free_port())
    errors += finish(resumed)
    assert [process.returncode for process in resumed] == [0, 0], errors
    finished, expected = np.load(path), np.load(reference / checkpoint.CHECKPOINT_FILE)
    for name in ("params_w", "params_b", "train_loss", "test_accuracy"):
        np.testing.assert_array_equal(finished[name], expected[name])


def write_meta(path, good: bytes, edit):
    """A copy of a checkpoint with its meta (and arrays) changed by `edit(meta, arrays)`."""
    import io

    with np.load(io.BytesIO(good)) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta = edit(meta, arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


def with_keys(**changes):
    return lambda meta, arrays: meta | changes


def with_plan(**changes):
    return lambda meta, arrays: meta | {"plan": meta["plan"] | changes}


def with_array(name, value):
    def edit(meta, arrays):
        arrays[name] = value
        return meta

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda meta, arrays: [], "not a jaxsoftmax checkpoint"),
        (with_keys(config=[1, 2]), "damaged"),
        (with_keys(step=10, state_leaves=None), "state"),
        (with_plan(max_models=0), "plan"),
        (with_plan(layout="diagonal"), "layout"),
        (with_plan(slice_seeds=3), "plan"),
        (with_keys(slice=2), "slice"),  # past the last slice: nothing would train
        (with_keys(slice=0), "steps_done"),  # the models' steps say otherwise
        (with_keys(version=99), "version 99 checkpoint"),
        (with_keys(format="other"), "not a jaxsoftmax checkpoint"),
        (with_array("diverged_at", np.zeros(5, np.int64)), "diverged_at"),
        (with_array("params_b", np.zeros((2, 3), np.float32)), "params"),
        (with_array("train_loss", np.zeros((3, 2), np.float32)), "train_loss"),
    ],
)
def test_hand_edited_checkpoints_give_one_error(good_checkpoint, tmp_path, edit, message):
    path = tmp_path / "edited.npz"
    write_meta(path, good_checkpoint, edit)
    with pytest.raises(CheckpointError, match=message) as error:
        checkpoint.load(path)
    assert "\n" not in str(error.value)


RESUME_ON_TWO_DEVICES = """
import sys
import numpy as np
import jax
import jaxsoftmax as js
from jaxsoftmax.data import load as data
from jaxsoftmax.sweep import checkpoint

dataset = data.load_dataset("mnist", data_dir=sys.argv[1])
config = js.SweepConfig(learning_rates=(0.001, 0.002, 0.004, 0.008), steps=40, eval_every=10,
                        chunk_steps=10)
assert len(jax.devices()) == 2
whole = js.train_sweep(dataset, config, max_models_per_program=3)
for stop_at in range(8):  # mid-slice, at the slices' boundary, in the second slice
    states, calls = [], iter(range(100))
    js.train_sweep(dataset, config, max_models_per_program=3, on_checkpoint=states.append,
                   should_stop=lambda: next(calls) == stop_at)
    resumed = js.train_sweep(dataset, config, resume=states[-1])
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    print(stop_at, (states[-1].slice_index, states[-1].step), states[-1].steps_done().tolist())
"""


def test_resume_on_two_devices_keeps_the_slices_of_the_padded_plan(small_dir, tmp_path):
    """4 settings, at most 3 per program, 2 devices: tiles of 4 (padded), two slices."""
    script = tmp_path / "resume_on_two_devices.py"
    script.write_text(RESUME_ON_TWO_DEVICES)
    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, str(script), str(small_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    positions = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert positions["3"] == "(1, 0) [40, 40, 40, 0]"  # after slice 0: lr 0.008 untrained
    assert positions["4"] == "(1, 10) [40, 40, 40, 10]"


KILLED_AFTER_REPORTS = """
import os, signal, sys
from jaxsoftmax.cli import train as cli
from jaxsoftmax.outputs import writing as outputs

record, seen = outputs.RunOutputs.record, []

def record_then_die(self, report):
    record(self, report)
    seen.append(report)
    if len(seen) == int(os.environ["KILL_AFTER"]):
        self._writer.close()  # what a killed process had flushed: up to this report
        os.kill(os.getpid(), signal.SIGKILL)

outputs.RunOutputs.record = record_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_killed_run_resumed_shows_each_step_once_in_tensorboard(small_dir, cli_env, tmp_path):
    """SIGKILL after the events of step 40 but the checkpoint of step 30: the resumed files
    purge what came after the checkpoint, so every step is there once, in order."""
    logdir = tmp_path / "killed"
    argv = ["--learning-rates", "0.002", "--steps", "50", "--eval-every", "10"]
    argv += ["--checkpoint-every", "15", "--data-dir", str(small_dir), *QUICK]
    env = cli_env | {"KILL_AFTER": "4"}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_REPORTS, *argv, "--logdir", str(logdir)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert cli.main(["--resume", str(logdir), *QUICK]) == 0
    train = accumulator(logdir / "lr=0.002" / "train").Scalars("train/loss")
    assert [event.step for event in train] == list(range(1, 51))
    test = accumulator(logdir / "lr=0.002" / "test").Scalars("test/accuracy")
    assert [event.step for event in test] == [10, 20, 30, 40, 50]


RESUME_WITH_FEW_FILES = """
import resource, sys
from jaxsoftmax.cli import train as cli
resource.setrlimit(resource.RLIMIT_NOFILE, (200, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_resumed_run_raises_its_open_file_limit_like_a_new_one(
    small_dir, cli_env, tmp_path, monkeypatch
):
    """100 models keep 300 event files open: more than a soft limit of 200 allows."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    rates = ",".join(f"{0.001 * (1 + k / 100):.6f}" for k in range(100))
    logdir = tmp_path / "many"
    argv = ["--learning-rates", rates, "--steps", "20", "--eval-every", "10"]
    argv += ["--checkpoint-every", "10", "--data-dir", str(small_dir), *QUICK]
    from jaxsoftmax.sweep import parallel

    calls = iter(range(100))
    monkeypatch.setattr(parallel, "any_process", lambda flag: next(calls) == 0)
    assert cli.main([*argv, "--logdir", str(logdir)]) == 143  # stopped after the first chunk
    monkeypatch.undo()
    done = subprocess.run(
        [sys.executable, "-c", RESUME_WITH_FEW_FILES, "--resume", str(logdir), *QUICK],
        env=cli_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert strict_json(logdir / "results.json")["interrupted"] is False
