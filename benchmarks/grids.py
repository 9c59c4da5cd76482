"""Grids from the command line, as a user runs them: wall time, throughput, peak memory.

Each grid is one `python -m jaxsoftmax.train --grid ... --no-summaries` process, its
compilation cache empty, timed from its start to its end with its own peak resident
memory (`processes.wall`); its throughput is model-steps over the training time
results.json records. The first grid is also run the other way, as separate processes of
one model each with the compilation cache on (as a user's repeated runs are: the first
compiles, the others read the program back), for the difference one program makes.

    python benchmarks/grids.py              # about 6 minutes on 2 cores
    python benchmarks/grids.py --quick      # a smoke test: small grids
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import provenance
from processes import wall

RESULTS = pathlib.Path(__file__).parent / "results"
LEARNING_RATES = "0.001,0.002,0.003,0.005,0.008,0.01,0.02,0.03,0.05,0.08"
WEIGHT_DECAYS = "0,1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1"


def seeds(count: int) -> str:
    return ",".join(str(seed) for seed in range(count))


GRIDS = (
    {"name": "3 learning rates x 10 seeds", "steps": 1000, "separately": True,
     "grid": f"learning_rate=0.002,0.005,0.008 seed={seeds(10)}"},
    {"name": "10 learning rates x 10 seeds x 10 weight decays", "steps": 1000,
     "grid": f"learning_rate={LEARNING_RATES} seed={seeds(10)} weight_decay={WEIGHT_DECAYS}"},
    {"name": "10 learning rates x 100 seeds x 10 weight decays x 10 momenta", "steps": 20,
     "grid": f"learning_rate={LEARNING_RATES} seed={seeds(100)} weight_decay={WEIGHT_DECAYS} "
             "momentum=0,0.1,0.2,0.3,0.5,0.7,0.8,0.9,0.95,0.99"},
)  # fmt: skip
QUICK = (
    {"name": "3 learning rates x 2 seeds", "steps": 50, "separately": True,
     "grid": "learning_rate=0.002,0.005,0.008 seed=0,1"},
    {"name": "2 learning rates x 2 seeds x 2 weight decays", "steps": 50,
     "grid": "learning_rate=0.002,0.005 seed=0,1 weight_decay=0,1e-3"},
)  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder of the MNIST IDX files (default: lookup)")
    parser.add_argument("--quick", action="store_true", help="small grids, few steps")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["XDG_CACHE_HOME"] = str(scratch / "cache")  # jaxsoftmax's compilation cache
        train = [sys.executable, "-m", "jaxsoftmax.train", "--no-summaries", "--quiet",
                 "--overwrite", *data]  # fmt: skip
        for spec in QUICK if args.quick else GRIDS:
            logdir = scratch / "grid"
            command = [*train, "--no-compilation-cache", "--grid", spec["grid"], "--steps",
                       str(spec["steps"])]  # fmt: skip
            peaks = []
            seconds = wall([*command, "--logdir", str(logdir)], env, peaks)
            found = json.loads((logdir / "results.json").read_text())
            models = len(found["runs"])
            row = {
                "name": spec["name"], "grid": spec["grid"], "steps": spec["steps"],
                "models": models, "wall_s": seconds, "peak_rss_mb": peaks[0],
                "timing": found["timing"],
                "model_steps_per_s": models * spec["steps"] / found["timing"]["train_s"],
            }  # fmt: skip
            if spec.get("separately"):
                one = [*train, "--steps", str(spec["steps"]), "--logdir", str(scratch / "one")]
                separate = []
                for run in found["runs"]:
                    setting = [
                        "--learning-rates",
                        str(run["learning_rate"]),
                        "--seed",
                        str(run["seed"]),
                    ]
                    separate.append(wall([*one, *setting], env))
                row["separately_s"] = sum(separate)
                row["separately_median_process_s"] = statistics.median(separate)
            rows.append(row)
            rate = row["model_steps_per_s"]
            print(f"{spec['name']}: {models} models, {seconds:.1f} s, {rate:,.0f} "
                  f"model-steps/s, {peaks[0]:.0f} MB", flush=True)  # fmt: skip
    document = {"provenance": provenance.provenance(), "quick": args.quick,
                "summaries": False, "grids": rows}  # fmt: skip
    stem = "grids-quick" if args.quick else "grids"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


if __name__ == "__main__":
    main()
