"""Wall time of `python -m jaxsoftmax.predict` on one picture, from fresh processes.

Trains a short run (or takes `--logdir`), writes one test digit as a PNG, then runs the
command in `--repeats` fresh processes and reports the median and the spread. The target
(issue 16) is a median of at most 1.0 s on the 2-core machine.

    python benchmarks/predict_latency.py [--logdir LOGDIR] [--repeats 5]

Writes results/predict_latency.json (--out to change the folder).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import provenance

RESULTS = pathlib.Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", type=pathlib.Path, help="a finished run (default: train one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", help="folder of the MNIST IDX files (default: lookup)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        logdir = args.logdir
        if logdir is None:
            logdir = work / "run"
            train = [sys.executable, "-m", "jaxsoftmax.train", "--steps", "100", "--quiet"]
            train += ["--logdir", str(logdir)] + (
                ["--data-dir", args.data_dir] if args.data_dir else []
            )
            subprocess.run(train, check=True)
        import jaxsoftmax as js

        dataset = js.load_dataset("mnist", data_dir=args.data_dir)
        picture = work / "digit.png"
        Image.fromarray(dataset.test_images[0]).save(picture)
        name = js.load_run(logdir).names[0]
        command = [sys.executable, "-m", "jaxsoftmax.predict", str(logdir), "--run", name]
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run([*command, str(picture)], capture_output=True, text=True)
            seconds.append(time.perf_counter() - start)
            if done.returncode:
                raise SystemExit(done.stderr)
    document = {
        "provenance": provenance.provenance(),
        "repeats": args.repeats,
        "seconds": [round(s, 4) for s in seconds],
        "median_s": round(statistics.median(seconds), 4),
        "spread_s": [round(min(seconds), 4), round(max(seconds), 4)],
        "output": done.stdout.strip(),
        "target_s": 1.0,
    }
    print(json.dumps(document, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_latency.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


if __name__ == "__main__":
    main()
