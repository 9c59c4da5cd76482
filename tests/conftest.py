"""Shared fixtures: strict JAX, and the real MNIST loaded once per session."""

import dataclasses
import os
import pathlib

import jax
import pytest

from jaxsoftmax.data import load as data

# Strictness: implicit rank promotion is an error (warnings are errors via pyproject).
jax.config.update("jax_numpy_rank_promotion", "raise")

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> pathlib.Path:
    """The root holding `mnist/`: $JAXSOFTMAX_DATA_DIR, else ../shared/datasets beside the repo."""
    configured = os.environ.get("JAXSOFTMAX_DATA_DIR")
    # Absolute: CI gives ../shared/datasets, and commands run in folders of their own.
    found = pathlib.Path(configured) if configured else REPO.parent / "shared" / "datasets"
    return found.absolute()


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory):
    """No test writes the user's own cache (~/.cache/jaxsoftmax: the layout probe's
    answers, compiled programs, downloads); tests that need their own set it again."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    folder = shared_datasets_dir() / "mnist"
    if data.find_idx_files(folder) is None:
        pytest.fail(f"real MNIST not found in {folder}; set JAXSOFTMAX_DATA_DIR (see README)")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> data.Dataset:
    return data.load_idx_folder(mnist_dir, name="mnist")


@pytest.fixture(scope="session")
def small(mnist) -> data.Dataset:
    """1,000 real training images (10 steps an epoch at batch 100) and 500 test images."""
    return dataclasses.replace(
        mnist,
        train_images=mnist.train_images[:1000],
        train_labels=mnist.train_labels[:1000],
        test_images=mnist.test_images[:500],
        test_labels=mnist.test_labels[:500],
    )


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for a command-line subprocess: real data, a private cache."""
    return os.environ | {
        "JAXSOFTMAX_DATA_DIR": str(shared_datasets_dir()),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


@pytest.fixture
def env(cli_env, monkeypatch):
    """In-process runs see the same environment as subprocesses."""
    for name in ("JAXSOFTMAX_DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, cli_env[name])
    return cli_env


@pytest.fixture(scope="session")
def logged_run(mnist_dir, tmp_path_factory):
    """A short real run with every summary on: (logdir, results.json as a dict)."""
    import json

    from jaxsoftmax.cli import train as cli

    logdir = tmp_path_factory.mktemp("logged") / "run"
    argv = ["--steps", "20", "--eval-every", "5", "--learning-rates", "0.002,0.005"]
    argv += ["--data-dir", str(mnist_dir), "--quiet", "--no-compilation-cache"]
    assert cli.main([*argv, "--logdir", str(logdir)]) == 0
    return logdir, json.loads((logdir / "results.json").read_text())
