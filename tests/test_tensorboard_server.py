"""End to end: a real `tensorboard` server on 127.0.0.1 serves every view of our runs."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

STARTUP_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(base: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(logged_run, tmp_path_factory):
    """Starts tensorboard on a free loopback port; stops it whatever happens."""
    logdir, document = logged_run
    port = free_port()
    executable = pathlib.Path(sys.executable).with_name("tensorboard")
    log = (tmp_path_factory.mktemp("tensorboard") / "server.log").open("w")
    process = subprocess.Popen(
        [str(executable), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"tensorboard exited with {process.returncode}; see {log.name}")
            try:
                runs = get(base, "/data/runs")
                # The server loads event files in the background: wait for all of ours.
                if len(runs) == 1 + 3 * len(document["runs"]):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve our runs within {STARTUP_TIMEOUT_S} s")
            time.sleep(0.5)
        yield base, document
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def eventually(fetch, check, timeout_s=30):
    """Polls `fetch` until `check` accepts it: the server indexes plugins lazily."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if check(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_every_plugin_is_active(server):
    base, _ = server
    listing = get(base, "/data/plugins_listing")
    for plugin in ("scalars", "custom_scalars", "histograms", "images", "graphs", "hparams"):
        assert listing[plugin]["enabled"], plugin


def test_custom_scalars_chart_each_metric_and_split_apart(server):
    base, _ = server
    layout = get(base, "/data/plugin/custom_scalars/layout")
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in layout["category"][0]["chart"]}
    assert charts == {  # no validation split here, so no (empty) validation chart
        "test accuracy": ["^test/accuracy$"],
        "test loss": ["^test/loss$"],
        "training loss (minibatch)": ["^train/loss$"],
        "training accuracy (minibatch)": ["^train/accuracy$"],
    }


def test_scalars_serve_every_run_and_the_final_accuracy(server):
    base, document = server
    tags = get(base, "/data/plugin/scalars/tags")
    for run in document["runs"]:
        for split in ("train", "test"):
            expected = {f"{split}/loss", f"{split}/accuracy"}
            assert set(tags[f"lr={run['learning_rate']}/{split}"]) == expected
        query = urllib.parse.urlencode(
            {"run": f"lr={run['learning_rate']}/test", "tag": "test/accuracy"}
        )
        series = get(base, f"/data/plugin/scalars/scalars?{query}")
        _, step, value = series[-1]
        assert step == 20 and value == pytest.approx(run["test_accuracy"], abs=1e-7)


def test_histograms_and_images(server):
    base, document = server
    histograms = get(base, "/data/plugin/histograms/tags")
    expected = {".", *(f"lr={run['learning_rate']}/train" for run in document["runs"])}
    images = eventually(
        lambda: get(base, "/data/plugin/images/tags"), lambda tags: expected <= set(tags)
    )
    assert set(images["."]) == {"input"}
    for run in document["runs"]:
        assert set(histograms[f"lr={run['learning_rate']}"]) == {"weights", "biases"}
        assert set(images[f"lr={run['learning_rate']}/train"]) == {"weights"}


def test_graph(server):
    base, _ = server
    info = eventually(lambda: get(base, "/data/plugin/graphs/info"), lambda runs: "." in runs)
    assert info["."]["run_graph"]
    graph = urllib.request.urlopen(f"{base}/data/plugin/graphs/graph?run=.", timeout=30).read()
    for scope in (b"softmax_linear_model", b"cross_entropy_loss", b"accuracy", b"train"):
        assert scope in graph


def test_hparams_compare_the_sweep(server):
    base, document = server
    experiment = get(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {h["name"] for h in experiment["hparamInfos"]} >= {
        "learning_rate", "batch_size", "steps", "loss_scale", "seed",
    }  # fmt: skip
    groups = get(
        base,
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )["sessionGroups"]
    by_rate = {group["hparams"]["learning_rate"]: group for group in groups}
    for run in document["runs"]:
        metrics = {
            m["name"]["tag"]: m["value"] for m in by_rate[run["learning_rate"]]["metricValues"]
        }
        assert metrics["hparams/test_accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-7)
