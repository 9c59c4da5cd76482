"""The benchmarks' quick modes as smoke tests: they run and report what they promise.

Speed targets live in the benchmarks' recorded results (benchmarks/RESULTS.md), not here:
these tests check the output's structure only.
"""

import json
import sys

import numpy as np
import pytest

from benchmarks import throughput, time_to_accuracy


def test_throughput_quick_mode_reports_every_variant(mnist_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    argv = ["--quick", "--models", "1,3", "--data-dir", str(mnist_dir), "--out", str(tmp_path)]
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
    for result in written["results"]:
        assert len(result["seconds"]) == 2 and min(result["seconds"]) > 0
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
