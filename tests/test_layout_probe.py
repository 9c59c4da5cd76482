"""The weight layout chosen by measurement: the probe, its cache, the flag."""

import json

import jax
import pytest

from jaxsoftmax.core import engine
from jaxsoftmax.core.optimizer import GradientDescent
from jaxsoftmax.sweep import layout_probe
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.plan import default_layout, make_plan

SHAPE = (784, 10, 100, GradientDescent())
DEFAULT = default_layout(jax.devices())


def test_the_probe_times_both_layouts_of_the_real_step():
    seconds = layout_probe.measure(8, *SHAPE, jax.devices()[0])
    assert set(seconds) == set(engine.LAYOUTS)
    # A step of 8 models on 100 images moves at least 8 * 784 * 10 weights: not free,
    # and not slower than a second on any device.
    assert all(1e-7 < value < 1.0 for value in seconds.values())
    if jax.devices()[0].platform == "cpu":  # a GPU runs both sizes in launch overhead
        # Seconds per step of the step itself: 8 times the models is over twice the time
        # on a CPU (the products grow 8x, about 4x the time measured; a probe that timed
        # calls, not steps, or the wrong program would not scale so), in each layout.
        bigger = layout_probe.measure(64, *SHAPE, jax.devices()[0])
        assert all(bigger[layout] > 2 * seconds[layout] for layout in engine.LAYOUTS)


@pytest.mark.parametrize(
    "default_s, other_s, chooses_other",
    [(1.06, 1.0, True), (1.04, 1.0, False), (1.0, 1.2, False), (3.0, 1.0, True)],
)
def test_the_other_layout_wins_only_when_over_5_percent_faster(
    tmp_path, monkeypatch, default_s, other_s, chooses_other
):
    """The rule alone, on given timings: `measure` is replaced (a real probe's outcome
    cannot be set), and the answer and what is cached follow the 5% margin."""
    other = next(layout for layout in engine.LAYOUTS if layout != DEFAULT)
    timings = {DEFAULT: default_s * 1e-3, other: other_s * 1e-3}
    monkeypatch.setattr(layout_probe, "measure", lambda *args: dict(timings))
    lines = []
    chosen = layout_probe.choose(jax.devices(), 8, *SHAPE, tmp_path, lines.append, default=DEFAULT)
    assert chosen == (other if chooses_other else DEFAULT)
    (entry,) = json.loads((tmp_path / layout_probe.CACHE_FILE).read_text()).values()
    assert entry == {"layout": chosen, "seconds_per_step": timings, "date": entry["date"]}
    assert f"{DEFAULT} {default_s:.3g} ms" in lines[0] and f"{other} {other_s:.3g} ms" in lines[0]


def test_a_probe_runs_once_then_the_cache_answers(tmp_path, monkeypatch):
    devices = jax.devices()
    lines = []
    chosen = layout_probe.choose(devices, 40, *SHAPE, tmp_path, lines.append, default=DEFAULT)
    assert chosen in engine.LAYOUTS
    assert len(lines) == 1 and lines[0].startswith(f"layout: {chosen}, measured for 32 models")
    cached = json.loads((tmp_path / layout_probe.CACHE_FILE).read_text())
    (entry,) = cached.values()
    assert entry["layout"] == chosen
    seconds = entry["seconds_per_step"]
    other = next(layout for layout in engine.LAYOUTS if layout != DEFAULT)
    # The default stays unless the other is more than 5% faster.
    assert (entry["layout"] == other) == (seconds[DEFAULT] > 1.05 * seconds[other])
    (key,) = cached
    assert jax.__version__ in key and devices[0].device_kind in key and "models 32" in key

    def no_measuring(*args):
        raise AssertionError("measured again: the cache was not read")

    monkeypatch.setattr(layout_probe, "measure", no_measuring)
    # 40 and 50 models a device round down to the same probe of 32: the cache answers both.
    assert (
        layout_probe.choose(devices, 50, *SHAPE, tmp_path, lines.append, default=DEFAULT) == chosen
    )
    assert len(lines) == 1
    # Another shape is another probe.
    with pytest.raises(AssertionError, match="measured again"):
        layout_probe.choose(devices, 30, 784, 10, 50, GradientDescent(), tmp_path, default=DEFAULT)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_a_broken_cache_is_measured_again_and_rewritten(tmp_path, content):
    (tmp_path / layout_probe.CACHE_FILE).write_text(content)
    chosen = layout_probe.choose(jax.devices(), 8, *SHAPE, tmp_path, default=DEFAULT)
    assert chosen in engine.LAYOUTS
    assert len(json.loads((tmp_path / layout_probe.CACHE_FILE).read_text())) == 1


def test_small_programs_are_not_probed_and_keep_the_backends_layout(tmp_path, small):
    assert layout_probe.choose(jax.devices(), 7, *SHAPE, tmp_path, default=DEFAULT) is None
    assert not (tmp_path / layout_probe.CACHE_FILE).exists()
    plan = make_plan(SweepConfig(learning_rates=(0.1, 0.2)), small)  # 2 models
    assert plan.layout == (engine.CLASS_MAJOR if jax.devices()[0].platform == "cpu"
                           else engine.FEATURE_MAJOR)  # fmt: skip


def test_make_plan_takes_the_probes_choice_and_a_forced_layout(small, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = SweepConfig(learning_rates=tuple(0.001 * (k + 1) for k in range(8)))
    plan = make_plan(config, small, devices=jax.devices()[:1])  # 8 models on one device
    cached = json.loads((tmp_path / "jaxsoftmax" / layout_probe.CACHE_FILE).read_text())
    (entry,) = cached.values()
    assert plan.layout == entry["layout"]
    for layout in engine.LAYOUTS:
        assert make_plan(config, small, layout=layout).layout == layout


def test_a_failing_probe_falls_back_to_the_backends_layout_with_a_note(small, monkeypatch):
    def failing(*args):
        raise MemoryError("out of device memory")

    monkeypatch.setattr(layout_probe, "measure", failing)
    lines = []
    config = SweepConfig(learning_rates=tuple(0.001 * (k + 1) for k in range(8)))
    plan = make_plan(config, small, devices=jax.devices()[:1], report=lines.append)
    assert plan.layout == (engine.CLASS_MAJOR if jax.devices()[0].platform == "cpu"
                           else engine.FEATURE_MAJOR)  # fmt: skip
    assert lines == [f"note: the layout probe failed (out of device memory); using {plan.layout}"]


def test_a_probes_time_is_in_the_timing_once_and_never_in_a_checkpoint(
    small, tmp_path, monkeypatch
):
    """The probe's seconds reach results.json's timing (and so the `time:` line) in the
    run that measured, not in one the cache answered; a checkpoint's plan leaves them out."""
    import jaxsoftmax as js

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = SweepConfig(learning_rates=tuple(0.001 * (k + 1) for k in range(8)), steps=20,
                         eval_every=10)  # fmt: skip
    timings = []
    for name in ("measured", "cached"):
        js.train_logged(small, config, tmp_path / name, summaries=False)
        timings.append(json.loads((tmp_path / name / "results.json").read_text())["timing"])
    assert 0 < timings[0]["probe_s"] < timings[0]["total_s"]
    assert "probe_s" not in timings[1]
    plan = js.load_checkpoint(tmp_path / "measured" / "checkpoint.npz")[0].plan
    assert plan.probe_s == 0 and "probe_s" not in plan.to_dict()
