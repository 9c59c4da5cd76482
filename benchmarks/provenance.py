"""Where a benchmark's numbers come from: the commit, the date, the machine, the versions.

Every benchmark writes `provenance()` into its JSON under "provenance", and
`benchmarks/tables.py` names it under every table it draws from that JSON.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import pathlib
import platform
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]
# The libraries whose versions a figure may depend on, where installed.
PACKAGES = (
    "jax",
    "jaxlib",
    "numpy",
    "optax",
    "tensorflow",
    "tensorflow-cpu",
    "torch",
    "scikit-learn",
    "optuna",
)


def cpu_model() -> str:
    """The processor's name (Linux's /proc/cpuinfo; else what `platform` says)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


# What a measurement depends on: the library, the benchmarks' own code, the dependencies.
# (The documents, the tests and the tables drawn from the results do not.)
MEASURED = ("src/jaxsoftmax/", "benchmarks/", "pyproject.toml")
NOT_MEASURED = ("benchmarks/results/", "benchmarks/tables.py", "benchmarks/RESULTS.md")


def commit() -> dict:
    """HEAD's short hash, and the tracked files that differ from it (a figure measured on
    uncommitted code names the commit it started from and what was changed)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    try:
        status = git("status", "--porcelain", "--untracked-files=no").splitlines()
        return {
            "commit": git("rev-parse", "--short", "HEAD").strip(),
            "dirty": bool(status),
            "changed": sorted(line[3:] for line in status),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": False, "changed": []}


def measured_code_changed(record: dict) -> bool:
    """Whether a record's uncommitted changes touch what it measured (unknown: yes)."""
    if not record.get("dirty"):
        return False
    if "changed" not in record:
        return True
    return any(
        path.startswith(MEASURED) and not path.startswith(NOT_MEASURED)
        for path in record["changed"]
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def provenance(device: str | None = None) -> dict:
    """The commit, date, machine and versions of a measurement made now.

    Args:
      device: what ran the measured code where it is not the CPU (e.g. "NVIDIA H100").
    """
    machine = {
        "processor": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
    }
    if device is not None:
        machine["device"] = device
    return commit() | {
        "date": datetime.date.today().isoformat(),
        "machine": machine,
        "versions": versions(),
    }


def describe(record: dict) -> str:
    """One line naming a measurement's commit, date and machine, for under a table."""
    machine = record["machine"]
    where = machine.get("device") or f"{machine['cores']} cores of {machine['processor']}"
    # Results and the documents drawn from them, written after the measurement, say
    # nothing of what was measured.
    written = ("benchmarks/results/", "mutation/results.json", "README.md",
               "benchmarks/RESULTS.md")  # fmt: skip
    others = [path for path in record.get("changed", ["?"]) if not path.startswith(written)]
    dirty = ""
    if measured_code_changed(record):
        dirty = " (with uncommitted changes to the code measured)"
    elif record.get("dirty") and others:
        dirty = " (the code measured as committed; other files edited)"
    return f"commit {record['commit']}{dirty}, {record['date']}, {where}"
