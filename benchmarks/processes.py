"""A program's wall time and peak memory, measured from a fresh process (`wall`)."""

import json
import subprocess
import sys

# Starts one program and reports its wall time and peak memory. A process's peak resident
# set size (ru_maxrss) includes that of the process it was forked from (Linux carries the
# old memory's high-water mark across exec), so the program is forked from this small
# interpreter, not from the benchmark's process, and timed here from fork to exit.
LAUNCHER = r"""
import json, os, sys, time
argv = json.loads(sys.argv[1])
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""


def wall(argv: list[str], env: dict | None = None, peaks: list | None = None) -> float:
    """Seconds from the program's start to its end; its peak resident memory (MB) is
    appended to `peaks`. Its standard output is discarded; a failure raises with the end
    of its standard error."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(argv)], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["exit"]:
        raise RuntimeError(f"{argv[:3]} failed ({measured['exit']}): {done.stderr[-2000:]}")
    if peaks is not None:
        peaks.append(measured["peak_rss_mb"])
    return measured["seconds"]
