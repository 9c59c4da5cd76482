"""Hyperparameter grids: parsing, planning, and training against a float64 NumPy oracle."""

import json
import os
import subprocess
import sys
import textwrap

import hypothesis
import hypothesis.strategies as st
import jax
import numpy as np
import pytest

from jaxsoftmax.cli import common as cmdline
from jaxsoftmax.cli import train as cli
from jaxsoftmax.core import batches, engine
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.plan import plan_slices
from jaxsoftmax.sweep.train import train_sweep

from .conftest import REPO


def numpy_sgd(dataset, config, point):
    """Oracle: one model in float64 NumPy, SGD with weight decay and momentum as documented.

    The gradient of loss_scale * mean cross-entropy, plus weight_decay * w on the
    weights; a momentum trace t = g + momentum * t; the step -learning_rate * t. The
    batch order and the initial weights come from the seed's documented streams: the
    minibatch order from `fold_in(key(seed), 0)`, normal initial weights times init_scale
    from `fold_in(key(seed), 1)`, biases zero.
    """
    images = dataset.train_images.reshape(len(dataset.train_images), -1) / 255.0
    labels = dataset.train_labels
    seed_key = jax.random.key(point["seed"])
    shape = (dataset.num_features, dataset.num_classes)
    normal = jax.random.normal(jax.random.fold_in(seed_key, 1), shape, np.float32)
    w = config.init_scale * np.asarray(normal, np.float64)
    b = np.zeros(dataset.num_classes)
    trace_w, trace_b = np.zeros_like(w), np.zeros_like(b)
    steps_per_epoch = len(images) // config.batch_size
    key = jax.random.fold_in(seed_key, 0)
    orders = {}
    for step in range(config.steps):
        epoch, position = divmod(step, steps_per_epoch)
        if epoch not in orders:
            orders[epoch] = np.asarray(batches.epoch_permutation(key, epoch, len(images)))
        batch = orders[epoch][position * config.batch_size : (position + 1) * config.batch_size]
        x, y = images[batch], np.eye(dataset.num_classes)[labels[batch]]
        logits = x @ w + b
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        delta = config.loss_scale * (probabilities - y) / len(batch)
        grad_w = x.T @ delta + point["weight_decay"] * w
        grad_b = delta.sum(axis=0)
        trace_w = grad_w + point["momentum"] * trace_w
        trace_b = grad_b + point["momentum"] * trace_b
        w -= point["learning_rate"] * trace_w
        b -= point["learning_rate"] * trace_b
    return w, b


GRID = {
    "learning_rate": (0.001, 0.004),
    "seed": (0, 5),
    "weight_decay": (0.0, 0.5),
    "momentum": (0.0, 0.9),
}


@pytest.fixture(scope="module")
def grid_run(small):
    config = SweepConfig.from_grid(GRID, steps=24, eval_every=8, init_scale=0.01)
    return config, train_sweep(small, config)


def test_every_grid_point_equals_a_float64_numpy_oracle(small, grid_run):
    config, result = grid_run
    assert config.num_models == 16 and len(config.points) == 16
    for k, point in enumerate(config.points):
        w, b = numpy_sgd(small, config, point)
        np.testing.assert_allclose(result.params["w"][k], w, atol=2e-5)
        np.testing.assert_allclose(result.params["b"][k], b, atol=2e-5)


def test_weight_decay_and_momentum_change_the_result(grid_run):
    config, result = grid_run
    by_point = {tuple(p.values()): k for k, p in enumerate(config.points)}
    plain = result.params["w"][by_point[0, 0.004, 0.0, 0.0]]
    decayed = result.params["w"][by_point[0, 0.004, 0.5, 0.0]]
    with_momentum = result.params["w"][by_point[0, 0.004, 0.0, 0.9]]
    assert np.abs(decayed).sum() < np.abs(plain).sum()
    assert np.abs(with_momentum - plain).max() > 1e-3


def test_points_that_share_a_seed_share_batches_and_seeds_differ(small):
    config = SweepConfig.from_grid(
        {"learning_rate": (0.002, 0.008), "seed": (1, 2)}, steps=3, eval_every=3
    )
    result = train_sweep(small, config)
    # Zero weights predict class 0: the first step's accuracy is the batch's share of zeros.
    first = result.train_accuracy[0]
    assert first[0] == first[1] and first[2] == first[3]
    # Same learning rate, same (zero) start, different seeds: only the batches differ.
    assert not np.array_equal(result.train_loss[:, 0], result.train_loss[:, 2])


def test_a_grid_point_equals_its_own_single_model_run(small, grid_run):
    config, result = grid_run
    k = 13
    point = config.points[k]
    alone = train_sweep(
        small,
        SweepConfig(
            learning_rates=(point["learning_rate"],),
            seed=point["seed"],
            weight_decays=(point["weight_decay"],),
            momenta=(point["momentum"],),
            steps=config.steps,
            eval_every=config.eval_every,
            init_scale=config.init_scale,
        ),
    )
    np.testing.assert_allclose(alone.params["w"][0], result.params["w"][k], atol=1e-6)
    np.testing.assert_allclose(alone.test_accuracy[:, 0], result.test_accuracy[:, k], atol=1e-3)


def test_slicing_the_grid_gives_the_same_results(small, grid_run):
    config, result = grid_run
    chunks = []
    sliced = train_sweep(small, config, max_models_per_program=3, on_chunk=chunks.append)
    # 8 settings per seed do not fit in 3: programs train 3, 3 and 2 (padded) of one seed.
    assert sorted({len(report.models) for report in chunks}) == [2, 3]
    for name in ("w", "b"):
        np.testing.assert_allclose(sliced.params[name], result.params[name], atol=1e-6)
    np.testing.assert_allclose(sliced.test_accuracy, result.test_accuracy, atol=1e-3)
    np.testing.assert_allclose(sliced.train_loss, result.train_loss, rtol=1e-5)


def test_the_seed_summary_is_mean_and_sample_std_over_seeds(grid_run):
    config, result = grid_run
    summary = result.seed_summary()
    assert len(summary) == len(config.settings) == 8
    final = result.test_accuracy[-1]
    for index, row in enumerate(summary):
        per_seed = [final[s * 8 + index] for s in range(2)]
        assert row["seeds"] == 2
        assert row["test_accuracy_mean"] == pytest.approx(np.mean(per_seed))
        assert row["test_accuracy_std"] == pytest.approx(np.std(per_seed, ddof=1))


def test_run_names_carry_every_varying_hyperparameter():
    config = SweepConfig.from_grid({"learning_rate": (0.002, 0.005), "weight_decay": (0, 1e-4)})
    assert grid.run_names(config) == [
        "lr=0.002,wd=0.0",
        "lr=0.002,wd=0.0001",
        "lr=0.005,wd=0.0",
        "lr=0.005,wd=0.0001",
    ]
    labels = {"learning_rate": ("2e-3", "5e-3"), "weight_decay": ("0", "1e-4")}
    assert grid.run_names(config, labels)[1] == "lr=2e-3,wd=1e-4"
    assert grid.run_names(SweepConfig()) == ["lr=0.002", "lr=0.005", "lr=0.008"]


@pytest.mark.parametrize(
    ("seeds", "settings", "limit", "devices", "slices", "shape", "axis"),
    [
        (1, 3, 1024, 1, 1, (1, 3), None),
        (10, 3, 1024, 1, 1, (10, 3), None),
        (10, 3, 7, 1, 5, (2, 3), None),  # 2 seeds of 3 settings a program
        (2, 5, 3, 1, 4, (1, 3), None),  # settings split: 3 + 2 (padded to 3)
        (1, 6, 1024, 4, 1, (1, 8), 1),  # 6 settings padded to 8 over 4 devices
        (8, 1, 1024, 4, 1, (8, 1), 0),  # 8 seeds of one setting: shard the seeds
        (3, 4, 1024, 4, 1, (3, 4), 1),
    ],
)
def test_grid_plans(seeds, settings, limit, devices, slices, shape, axis):
    plan = plan_slices(seeds, settings, limit, devices, layout=engine.CLASS_MAJOR, chunks=((1, 5),))
    assert plan.num_slices == len(plan.slices) == slices
    assert (plan.slice_seeds, plan.slice_settings) == shape and plan.shard_axis == axis
    covered = sorted((s, m) for rows, columns in plan.slices for s in rows for m in columns)
    assert covered == [(s, m) for s in range(seeds) for m in range(settings)]
    models = np.concatenate([plan.slice_models(index) for index in range(plan.num_slices)])
    assert sorted(models.tolist()) == list(range(seeds * settings))
    assert type(plan).from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("learning_rate", "AXIS=VALUE"),
        ("lr=0.1", "unknown grid axis 'lr'"),
        ("learning_rate=0.1 learning_rate=0.2", "given twice"),
        ("learning_rate=0.1,,0.2", "empty value"),
        ("learning_rate=0.1,abc", "'abc' is not a number"),
        ("learning_rate=0.1,-2", "positive finite"),
        ("learning_rate=0.1,1e-1", "twice"),
        ("seed=1.5", "whole number"),
        ("momentum=1", "[0, 1)"),
        ("weight_decay=nan", ">= 0"),
    ],
)
def test_bad_grids_are_one_clear_error(text, message):
    with pytest.raises(ConfigError) as caught:
        grid.parse_grid(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@hypothesis.given(st.text(alphabet="learning_ratesdwyomum=0123456789.,-e +", max_size=60))
@hypothesis.settings(max_examples=300, deadline=None)
def test_the_grid_parser_only_ever_raises_config_error(text):
    try:
        parsed = grid.parse_grid(text)
    except ConfigError:
        return
    config = SweepConfig.from_grid(grid.grid_values(parsed))
    assert config.num_models == np.prod([len(values) for values in parsed.values()])


def test_command_line_grid_writes_every_point_and_the_seed_summary(mnist_dir, tmp_path, capsys):
    logdir = tmp_path / "run"
    argv = ["--grid", "learning_rate=0.002,5e-3 seed=0,1", "--steps", "20", "--eval-every", "10"]
    argv += ["--data-dir", str(mnist_dir), "--no-compilation-cache", "--logdir", str(logdir)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    document = json.loads((logdir / "results.json").read_text())
    names = [run["name"] for run in document["runs"]]
    assert names == ["lr=0.002,seed=0", "lr=5e-3,seed=0", "lr=0.002,seed=1", "lr=5e-3,seed=1"]
    assert sorted(path.name for path in logdir.glob("lr=*")) == sorted(names)
    assert [run["seed"] for run in document["runs"]] == [0, 0, 1, 1]
    summary = document["seed_summary"]
    assert [row["learning_rate"] for row in summary] == [0.002, 0.005]
    mean = np.mean([document["runs"][k]["test_accuracy"] for k in (1, 3)])
    assert summary[1]["test_accuracy_mean"] == pytest.approx(mean)
    assert "test accuracy over 2 seeds" in out and f"{mean:.2%} ±" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "learning_rate=0.1", "--learning-rates", "0.2"], "not both"),
        (["--grid", "seed=1,2", "--seed", "3"], "not both"),
        (["--grid", "momentum=0.5,1.5"], "momentum 1.5 is not in [0, 1)"),
        (["--grid", "speed=1"], "unknown grid axis 'speed'"),
        (["--max-models-per-program", "0"], "must be a whole number >= 1, got 0"),
        (["--max-models-per-slice", "x"], "'x' is not a whole number"),
        (["--num-processes", "2"], "needs all of --coordinator"),
    ],
)
def test_command_line_grid_mistakes(argv, message, mnist_dir, tmp_path, capsys):
    argv = [*argv, "--data-dir", str(mnist_dir), "--logdir", str(tmp_path / "run")]
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    err = capsys.readouterr().err
    assert status == cmdline.EXIT_USAGE
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    import jaxsoftmax as js
    from jaxsoftmax.data import load as data
    from jaxsoftmax.core import engine
    from jaxsoftmax.sweep.train import train_sweep
    SweepConfig = js.SweepConfig
    assert jax.device_count() == 4, jax.devices()
    mnist = data.load_idx_folder(sys.argv[1], name="mnist")
    config = SweepConfig.from_grid(
        {"learning_rate": (0.001, 0.003, 0.005), "seed": (0, 1)},
        steps=30, eval_every=10, init_scale=0.01,
    )
    one = train_sweep(mnist, config, devices=jax.devices()[:1])
    four = train_sweep(mnist, config)
    plan = js.make_plan(config, mnist)
    target = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(jax.devices()), ("models",)),
        jax.sharding.PartitionSpec(None, "models"),
    )
    rates = np.array([0.001, 0.003] * 2, np.float32)
    sharded = engine.init_grid(
        np.array([0, 1], np.int32), rates, np.zeros(4, np.float32), np.zeros(4, np.float32),
        num_features=784, num_classes=10, init_scale=0.01, cosine_steps=0,
        descent=engine.GradientDescent(), layout=plan.layout, target=target,
    )
    print(json.dumps({
        "tile": [plan.slice_seeds, plan.slice_settings], "axis": plan.shard_axis,
        "devices_holding_state": len(sharded.params["w"].sharding.device_set),
        "params": max(float(np.abs(one.params[n] - four.params[n]).max()) for n in ("w", "b")),
        "accuracy": float(np.abs(one.test_accuracy - four.test_accuracy).max()),
    }))
    """
)


def test_sharded_over_four_cpu_devices_equals_one_device(mnist_dir):
    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED, str(mnist_dir)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # 2 seeds x 3 settings: the settings axis is padded to 4 and split over the devices.
    assert report["tile"] == [2, 4] and report["axis"] == 1
    assert report["devices_holding_state"] == 4
    assert report["params"] < 1e-6 and report["accuracy"] < 1e-3


def test_sharded_over_all_local_devices_equals_one_device(small):
    """On a machine of several accelerators (the GPU check runs this): the models sharded
    over all of them train as on the first alone."""
    devices = jax.local_devices()
    if len(devices) < 2:
        pytest.skip("one local device: nothing to shard over (the 4-CPU test covers it here)")
    config = SweepConfig(learning_rates=(0.001, 0.004, 0.01), seeds=(0, 1), steps=30,
                         eval_every=10, init_scale=0.01)  # fmt: skip
    one = train_sweep(small, config, devices=devices[:1])
    every = train_sweep(small, config, devices=devices)
    for name in ("w", "b"):
        assert np.abs(one.params[name] - every.params[name]).max() < 1e-5
    assert np.abs(one.test_accuracy - every.test_accuracy).max() < 1e-3


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_on_loopback_train_a_grid_like_one_process(mnist_dir, cli_env, tmp_path):
    """Real jax.distributed: 2 processes x 2 CPU devices, gloo collectives, 127.0.0.1."""
    grid_text = "learning_rate=0.001,0.004 seed=0,1 momentum=0,0.9"
    common = ["--grid", grid_text, "--steps", "30", "--eval-every", "10", "--init-scale", "0.01"]
    common += ["--data-dir", str(mnist_dir), "--quiet", "--no-compilation-cache"]
    port = _free_port()
    env = cli_env | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    processes = []
    try:
        for process_id in range(2):
            argv = [*common, "--logdir", str(tmp_path / f"run{process_id}")]
            argv += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
            argv += ["--process-id", str(process_id)]
            command = [sys.executable, "-m", "jaxsoftmax.train", *argv]
            processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=REPO,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        outputs = [process.communicate(timeout=150) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    # Only process 0 writes; process 1's --logdir stays untouched.
    assert not (tmp_path / "run1").exists()
    distributed = json.loads((tmp_path / "run0" / "results.json").read_text())
    single = tmp_path / "single"
    assert cli.main([*common, "--logdir", str(single)]) == 0
    alone = json.loads((single / "results.json").read_text())
    assert [run["name"] for run in distributed["runs"]] == [run["name"] for run in alone["runs"]]
    for a, b in zip(distributed["runs"], alone["runs"], strict=True):
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1e-3)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_the_parsed_grid_text_goes_straight_into_a_config():
    config = SweepConfig.from_grid(grid.parse_grid("learning_rate=0.1,2e-1 seed=1,2"))
    assert config.learning_rates == (0.1, 0.2) and config.seeds == (1, 2)
    with pytest.raises(ConfigError, match=r"seed '1\.5' is not a whole number"):
        SweepConfig.from_grid({"seed": ("1.5",)})
