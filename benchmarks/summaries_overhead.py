"""Wall time of the default run with every TensorBoard summary on, against summaries off.

Runs `python -m jaxsoftmax.train` as fresh processes, alternating the two variants so
that a noisy machine treats both alike, with the compilation cache warm; reports the
median of each, their ratio and the size of the log directory.

    python benchmarks/summaries_overhead.py [--repeats 9] [-- extra train flags]

Writes results/summaries_overhead.json (--out to change the folder).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import provenance

RESULTS = pathlib.Path(__file__).parent / "results"


def run_once(logdir: pathlib.Path, flags: list[str]) -> float:
    """Seconds for one training process, start to exit."""
    command = [sys.executable, "-m", "jaxsoftmax.train", "--quiet", "--logdir", str(logdir)]
    start = time.perf_counter()
    subprocess.run([*command, *flags], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="folder for the JSON")
    parser.add_argument("flags", nargs="*", help="extra flags for jaxsoftmax.train")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        run_once(scratch / "warm-up", args.flags)  # fills the compilation cache
        times = {"summaries on": [], "summaries off": []}
        for repeat in range(args.repeats):
            times["summaries on"].append(run_once(scratch / f"on{repeat}", args.flags))
            off_flags = [*args.flags, "--no-summaries"]
            times["summaries off"].append(run_once(scratch / f"off{repeat}", off_flags))
        log_bytes = folder_bytes(scratch / "on0")

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["summaries on"] / medians["summaries off"]
    for name, values in times.items():
        print(
            f"{name:>14}: median {medians[name]:.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"
        )
    print(f"ratio on/off: {ratio:.2f}x; log directory {log_bytes / 1e6:.2f} MB")
    document = {
        "provenance": provenance.provenance(),
        "flags": args.flags,
        "repeats": args.repeats,
        "seconds": times,
        "median_s": medians,
        "ratio": ratio,
        "logdir_bytes": log_bytes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summaries_overhead.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


if __name__ == "__main__":
    main()
