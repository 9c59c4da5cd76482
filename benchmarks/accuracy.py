"""The default run's test accuracy against the original TensorFlow 1 program's, over seeds.

Both train the tutorial's job (learning rates 0.002, 0.005 and 0.008; batch 100; 1000
steps; zero initialisation; plain SGD on 100 x the mean cross-entropy) on the same data,
once per shuffling seed: jaxsoftmax's `SweepConfig(seed=s)`, the original through
`peers.peer_params("tf1_original", ...)` on `peers.minibatch_indices(seed=s)` (a NumPy
permutation per epoch, as `input_data` shuffled). A run's final accuracy depends on its
minibatch order by a few tenths of a point, so the spread over seeds is the figure to
compare; the tutorial's own stated accuracies are recorded beside.

    python benchmarks/accuracy.py [--seeds 8] [--out benchmarks/results]
"""

import argparse
import json
import pathlib
import sys

import numpy as np

import jaxsoftmax as js

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import peers
import provenance

RESULTS = pathlib.Path(__file__).parent / "results"
LEARNING_RATES = (0.002, 0.005, 0.008)
# The accuracies the TensorFlow 1.4 tutorial states for its three learning rates.
STATED = {"0.002": 0.915, "0.005": 0.920, "0.008": 0.923}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="shuffling seeds 0..N-1 (default 8)")
    parser.add_argument("--steps", type=int, default=1000, help="steps of each run (default 1000)")
    parser.add_argument("--data-dir", help="folder of the MNIST IDX files (default: lookup)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    dataset = js.load_dataset("mnist", data_dir=args.data_dir)
    images = dataset.train_images.reshape(len(dataset.train_images), -1)
    test_inputs = dataset.test_images.reshape(len(dataset.test_images), -1) / 255.0
    ours, original = [], []
    for seed in range(args.seeds):
        config = js.SweepConfig(learning_rates=LEARNING_RATES, steps=args.steps, seed=seed,
                                eval_every=args.steps)  # fmt: skip
        ours.append([float(a) for a in js.train_sweep(dataset, config).test_accuracy[-1]])
        order = peers.minibatch_indices(len(images), args.steps, 100, seed=seed)
        weights, biases = peers.peer_params("tf1_original", images, dataset.train_labels,
                                            LEARNING_RATES, order)  # fmt: skip
        logits = np.einsum("nf,kfc->knc", test_inputs, weights) + biases[:, None, :]
        original.append([float(a) for a in (logits.argmax(-1) == dataset.test_labels).mean(1)])
        print(f"seed {seed}: jaxsoftmax {ours[-1]}, original {original[-1]}", flush=True)
    document = {
        "provenance": provenance.provenance(),
        "learning_rates": list(LEARNING_RATES),
        "steps": args.steps,
        "seeds": list(range(args.seeds)),
        "jaxsoftmax": ours,
        "original": original,
        "stated": STATED,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


if __name__ == "__main__":
    main()
