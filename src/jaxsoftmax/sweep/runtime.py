"""Process-wide JAX settings the command line turns on."""

import os
import pathlib

import jax


def enable_compilation_cache(cache_dir: str | os.PathLike) -> None:
    """Keeps compiled programs in `cache_dir`, so a second run skips compiling.

    Every program is cached, however quick to compile: the sweep's chunk programs
    take about a second each, which is a large share of a short run.
    """
    pathlib.Path(cache_dir).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
