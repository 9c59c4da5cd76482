"""The benchmarks' quick modes as smoke tests: they run and report what they promise.

Speed targets live in the benchmarks' recorded results (benchmarks/RESULTS.md), not here:
these tests check the output's structure only.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import throughput, time_to_accuracy
from jaxsoftmax.sweep.config import SweepConfig

from .conftest import REPO


def test_throughput_quick_mode_reports_every_variant(mnist_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    argv = ["--quick", "--models", "1,3", "--data-dir", str(mnist_dir), "--out", str(tmp_path),
            "--peers", "tf1_original,torch_stacked"]  # fmt: skip
    document = throughput.main(argv)
    written = json.loads((tmp_path / "throughput-quick.json").read_text())
    assert written["results"] == json.loads(json.dumps(document["results"]))
    assert written["matmul_peak_flops"] > 1e9
    assert written["flops_per_model_step"] == 4 * 100 * 784 * 10
    variants = {(r["variant"], r["models"]) for r in written["results"]}
    for models in (1, 3):
        for variant in ("engine (vmap + scan)", "per-step (vmap)", "sequential"):
            assert (variant, models) in variants
    if "tensorflow" in sys.modules or _importable("tensorflow"):
        assert ("TF1 original (feed_dict)", 1) in variants
    if _importable("torch"):
        assert ("PyTorch eager, stacked (one GEMM)", 3) in variants
    assert set(written["provenance"]) >= {"commit", "date", "machine", "versions"}
    for result in written["results"]:
        assert len(result["seconds"]) == 2 and min(result["seconds"]) > 0
        # No variant outruns the machine: its products' FLOP/s stay under the measured
        # matmul peak (with room for the peak's own noise).
        assert result["model_steps_per_s"] * written["flops_per_model_step"] < (
            1.5 * written["matmul_peak_flops"]
        )
        assert result["model_steps_per_s"] == pytest.approx(
            result["models"] * result["steps"] / result["median_s"]
        )
    table = (tmp_path / "throughput-quick.md").read_text().splitlines()
    assert table[0].startswith("| variant | K |") and len(table) == 2 + len(written["results"])
    assert (tmp_path / "throughput-quick.png").read_bytes()[:4] == b"\x89PNG"
    assert "matrix-multiply peak" in capsys.readouterr().out


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_shifted_copies_move_every_pixel_and_fill_with_zeros():
    images = np.random.default_rng(0).integers(1, 256, (3, 5, 4), dtype=np.uint8)
    shifts = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
    copies = time_to_accuracy.shifted_copies(images, shifts).reshape(5, 3, 5, 4)
    for (down, right), copy in zip(shifts, copies, strict=True):
        for row in range(5):
            for column in range(4):
                source = (row - down, column - right)
                inside = 0 <= source[0] < 5 and 0 <= source[1] < 4
                want = images[:, source[0], source[1]] if inside else 0
                np.testing.assert_array_equal(copy[:, row, column], want)


def test_the_optuna_peer_trains_as_sgd_in_numpy_does(small):
    """The plain JAX + optax trainer Optuna's trials use, against float64 NumPy."""
    from benchmarks import search

    train_x, train_y, _, _ = search.split(small, 200)
    steps, lr, decay, momentum = 6, 0.004, 0.01, 0.8
    optimizer, train, _ = search.plain_trainer(steps)
    import jax.numpy as jnp

    params = {"w": jnp.zeros((784, 10)), "b": jnp.zeros((1, 10))}
    state = optimizer.init(params)
    state.hyperparams["weight_decay"] = jnp.asarray(decay)
    state.hyperparams["momentum"] = jnp.asarray(momentum)
    indices = np.random.default_rng(0).integers(0, len(train_x), (steps, 100))
    params, _ = train(params, state, lr, 0, indices, train_x, train_y)

    w, b = np.zeros((784, 10)), np.zeros(10)
    trace_w, trace_b = np.zeros_like(w), np.zeros_like(b)
    for t, batch in enumerate(indices):
        x, y = np.float64(train_x[batch]), train_y[batch]
        logits = x @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        grad_w, grad_b = 100 * x.T @ p / len(y) + decay * w, 100 * p.mean(axis=0)
        trace_w, trace_b = grad_w + momentum * trace_w, grad_b + momentum * trace_b
        rate = lr * 0.5 * (1 + np.cos(np.pi * t / steps))
        w, b = w - rate * trace_w, b - rate * trace_b
    np.testing.assert_allclose(params["w"], w, atol=2e-6)
    np.testing.assert_allclose(params["b"][0], b, atol=2e-6)


def test_the_optuna_peers_program_holds_no_data(mnist):
    """The training data are arguments of the peer's compiled program, not constants in
    it: closed over, MNIST's 50,000 float32 images would be 157 MB of program text."""
    from benchmarks import search

    train_x, train_y, _, _ = search.split(mnist, 10_000)
    optimizer, train, _ = search.plain_trainer(1800)
    import jax.numpy as jnp

    params = {"w": jnp.zeros((784, 10)), "b": jnp.zeros((1, 10))}
    lowered = train.lower(params, optimizer.init(params), 0.01, 0,
                          np.zeros((200, 100), np.int32), train_x, train_y)  # fmt: skip
    assert len(lowered.as_text()) < 100_000


def test_scikit_learns_warm_started_path_reaches_each_cs_own_optimum(small):
    """Oracle: a fit from scratch at the last C. The problem is strictly convex, so the
    warm-started path's last model is the same model (to lbfgs's tolerance)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from benchmarks import search

    data = search.split(small, 200)
    row = search.sklearn_search(data, (0.01, 0.001))
    assert [fit["C"] for fit in row["fits"]] == [0.001, 0.01]  # strong to weak
    assert all(fit["converged"] for fit in row["fits"])
    assert row["best"] == max(fit["validation_accuracy"] for fit in row["fits"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = LogisticRegression(C=0.01, max_iter=search.SKLEARN_MAX_ITER).fit(*data[:2])
    assert abs(cold.score(*data[2:]) - row["fits"][-1]["validation_accuracy"]) <= 1 / 200


def test_search_quick_mode_compares_every_method(tmp_path, capsys):
    from benchmarks import search

    document = search.main(["--quick", "--datasets", "mnist", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "search-quick.json").read_text())
    assert written == json.loads(json.dumps(document))
    assert set(written["provenance"]) >= {"commit", "date", "machine", "versions"}
    (found,) = written["datasets"]
    methods = [row["method"] for row in found["rows"]]
    studies = found["optuna_studies"]
    plain = max(studies[:2], key=lambda study: study["best"])
    chosen = max(studies[2:], key=lambda study: study["best"])
    assert methods == ["ours, random", "ours, halving", "ours, --auto",
                       "Optuna, TPE, no pruner", chosen["method"],
                       "scikit-learn LogisticRegression over C"]  # fmt: skip
    assert found["rows"][3] == plain and found["rows"][4] == chosen
    assert [(s["pruner"], s["jobs"]) for s in studies] == [
        (None, 1),
        (None, search.OPTUNA_JOBS),
        *((p, search.OPTUNA_JOBS) for p in search.QUICK["pruners"]),
    ]
    for row in found["rows"]:
        assert 0.5 < row["best"] <= 1 and row["seconds"] > 0 and row["trials"] >= 2
        if "curve" in row:  # best so far: never falls, ends at the best
            best = [value for _, value in row["curve"]]
            assert best == sorted(best) and best[-1] == row["best"]
    for study in studies[:2]:  # without a pruner every trial runs to the end
        assert study["pruned"] == 0 and study["completed"] == study["trials"]
    headline = found["headline"]
    assert headline["target"] == plain["best"]
    reached = [t for t, value in plain["curve"] if value >= plain["best"]]
    assert headline["time_to_target_s"]["Optuna, TPE, no pruner"] == reached[0]
    auto = found["rows"][2]
    assert auto["steps_per_trial"] == auto["rungs"][-1] and 0 < auto["test_accuracy"] <= 1
    assert written["big"]["trials"] == 40 and 0 < written["big"]["peak_rss_gb"] < 4
    table = (tmp_path / "search-quick.md").read_text()
    assert table.count("| ours, ") == 3 and "peak memory" in table
    assert (tmp_path / "search-quick.png").read_bytes()[:4] == b"\x89PNG"


def test_time_to_accuracy_quick_mode_chooses_on_validation_and_times_the_choice(
    mnist_dir, tmp_path
):
    """The recipe and C are the validation split's best; the cold process trains the very
    model the warm run does (the same accuracy after every epoch, bitwise); each time to a
    target is that of the first epoch (ours) or fit (scikit-learn) that reached it."""
    argv = ["--quick", "--datasets", "mnist", "--data-dir", str(mnist_dir.parent)]
    document = time_to_accuracy.main([*argv, "--out", str(tmp_path)])
    written = json.loads((tmp_path / "time_to_accuracy-quick.json").read_text())
    assert written == json.loads(json.dumps(document))
    assert set(written["provenance"]) >= {"commit", "date", "machine", "versions"}
    (found,) = written["datasets"]
    ours = found["jaxsoftmax"]
    best = max(ours["candidates"], key=lambda entry: entry["validation_accuracy"])
    assert ours["recipe"] == {key: best[key] for key in ours["recipe"]}
    (cold,) = ours["cold_processes"]
    assert cold["accuracy_by_epoch"] == ours["warm"]["accuracy_by_epoch"]
    assert cold["compile_s"] > ours["warm"]["compile_s"]
    for target in found["targets"]:
        epochs = [a >= target for a in ours["warm"]["accuracy_by_epoch"]]
        assert (ours["warm"]["time_to_target_s"][str(target)] is None) == (not any(epochs))
    sklearn = found["scikit_learn"]
    chosen = max(sklearn["chosen"]["candidates"], key=lambda entry: entry["validation_accuracy"])
    assert sklearn["validated_c"]["C"] == chosen["C"] and sklearn["default_c"]["C"] == 1.0
    for run in (sklearn["validated_c"], sklearn["default_c"]):
        for target, seconds in run["time_to_target_s"].items():
            reached = [fit for fit in run["fits"] if fit["test_accuracy"] >= float(target)]
            assert seconds == (reached[0]["fit_s"] if reached else None)
        assert run["converged"]["iterations"] >= run["fits"][-1]["iterations"]
    for run in found["best"].values():
        assert run["test_accuracy"] == run["test_accuracy_by_seed"]["0"]


def test_the_gpu_check_runs_its_steps_on_cpu_in_dry_run_mode(mnist_dir, tmp_path):
    """benchmarks/gpu_check.sh --dry-run: the GPU check's steps (devices, the GPU-relevant
    tests, throughput with the layout probe, the one-line summary) on CPU JAX, K <= 30."""
    from jaxsoftmax.core.layouts import LAYOUTS

    env = os.environ | {"PYTHON": sys.executable, "JAXSOFTMAX_DATA_DIR": str(mnist_dir.parent),
                        "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip
    script = str(REPO / "benchmarks" / "gpu_check.sh")
    done = subprocess.run(["bash", script, "--dry-run", str(tmp_path / "out")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert set(summary["K"]) == {"3", "30"} and summary["device"].startswith("cpu")
    document = json.loads((tmp_path / "out" / "throughput-quick.json").read_text())
    bandwidth = document["copy_bandwidth_bytes_per_s"]
    assert summary["copy_bandwidth_GB_per_s"] == round(bandwidth / 1e9, 1) > 0
    for k, entry in summary["K"].items():
        assert entry["layout"] in LAYOUTS
        engine = next(r for r in document["results"]
                      if r["models"] == int(k) and r["variant"].startswith("engine"))  # fmt: skip
        moved = 3 * 4 * int(k) * 784 * 10 + 100 * 784  # weights read twice, written once; batch
        roofline = engine["model_steps_per_s"] / int(k) * moved / bandwidth
        assert entry["engine_fraction_of_memory_roofline"] == pytest.approx(roofline, abs=1e-4)
        assert entry["engine_model_steps_per_s"] == round(engine["model_steps_per_s"]) > 0
    assert 'failures="0"' in (tmp_path / "out" / "tests.xml").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [([], "give the folder to write to"), (["--fast", "x"], "unknown option --fast"),
     (["a", "b"], "give one OUT folder")],
)  # fmt: skip
def test_the_gpu_check_refuses_bad_arguments_in_one_line(tmp_path, argv, message):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), *argv],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_startup_times_the_default_run_and_the_floor_in_fresh_processes(mnist_dir, tmp_path):
    from benchmarks import startup

    chosen = ["jaxsoftmax cold", "jaxsoftmax warm", "floor + evaluations cold"]
    result = startup.main(["--repeats", "1", "--tutorial-repeats", "0", "--variants",
                           ",".join(chosen), "--data-dir", str(mnist_dir),
                           "--out", str(tmp_path)])  # fmt: skip
    assert json.loads((tmp_path / "startup.json").read_text()) == json.loads(json.dumps(result))
    assert set(result["provenance"]) >= {"commit", "date", "machine", "versions"}
    walls = result["median_wall_s"]
    assert set(walls) == set(chosen)
    # The floor trains and evaluates as the default run does: 1000 steps, test every 10.
    assert (SweepConfig().steps, SweepConfig().eval_every) == (1000, startup.EVAL_EVERY)
    for name in ("jaxsoftmax cold", "jaxsoftmax warm"):
        timing = result["jaxsoftmax_timing_medians"][name]
        # The run's own stages fit inside the wall time of its process.
        assert 0 < timing["import_s"] + timing["compile_s"] + timing["train_s"] < walls[name]
    for name, peak in result["median_peak_rss_mb"].items():
        assert 100 < peak < 4000, name  # JAX alone takes over 100 MB
    # Each child's peak is its own: a bare interpreter's is far below this process's
    # (hundreds of MB by now), which a count inherited across the fork would include.
    import resource

    peaks = []
    startup.wall([sys.executable, "-c", "pass"], os.environ, peaks)
    assert peaks[0] < 50 < resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_sklearn_compare_quick_mode_runs_every_peer_and_renders_its_table(mnist_dir, tmp_path):
    """The smoke run of benchmarks/sklearn_compare.py: every classifier on both sets, the
    three searches on the same folds (ours and GridSearchCV over the same classifier and
    grid choose alike), the figure, and the README's table drawn from the JSON."""
    from benchmarks import sklearn_compare, tables

    argv = ["--quick", "--data-dir", str(mnist_dir), "--out", str(tmp_path)]
    document = sklearn_compare.main(argv)
    written = json.loads((tmp_path / "sklearn_compare-quick.json").read_text())
    assert written == json.loads(json.dumps(document))
    assert [(row["data"], row["model"]) for row in written["fits"]] == [
        (data, model) for data in ("MNIST", "breast cancer") for model in sklearn_compare.peers()
    ]
    assert all(0.7 < row["test_accuracy"] <= 1 and row["fit_s"] > 0 for row in written["fits"])
    ours, halving, alone, peer = written["searches"]
    assert halving["search"] == "SoftmaxSearchCV, halving" and halving["settings"] >= 2
    assert ours["search"] == "SoftmaxSearchCV" and ours["settings"] == 2 and ours["folds"] == 2
    assert ours["best_params"] == alone["best_params"]
    assert ours["best_cv_accuracy"] == pytest.approx(alone["best_cv_accuracy"], abs=2 / 1000)
    assert peer["settings"] == 2 and 0.7 < peer["best_cv_accuracy"] <= 1
    assert (tmp_path / "sklearn_compare-quick.png").read_bytes()[:4] == b"\x89PNG"

    class Written(dict):  # tables.Results over the quick run's JSON
        def __getitem__(self, name):
            return written

    text = tables.readme_sklearn(Written())
    assert text.count("| MNIST |") == 3 and "| SoftmaxSearchCV | 2 \u00d7 2 |" in text
    assert f"{100 * ours['best_cv_accuracy']:.2f}%" in text
