"""jaxsoftmax's scikit-learn estimators against scikit-learn's own, one run, same data.

(a) Fit time and test accuracy on MNIST (60,000 training images, pixels / 255, the
10,000 test images) and on a tabular set bundled with scikit-learn (breast cancer,
standardised in a Pipeline, a stratified 75/25 split): `SoftmaxClassifier()` against
`LogisticRegression` (lbfgs, max_iter=1000: converged) and `SGDClassifier(loss="log_loss",
n_jobs=-1)` (one-vs-rest, its classes in parallel), each with its defaults otherwise.

(b) Cross-validated search on MNIST, 5 folds x 27 settings: `SoftmaxSearchCV` (every
setting trained to the end, and with successive halving over steps) against
`GridSearchCV(SoftmaxClassifier(), same grid, n_jobs=-1)` (the gain of training them in
one program alone) and against `GridSearchCV(LogisticRegression(max_iter=1000), 9 values
of C, n_jobs=-1)` (what a user runs today): wall time and best cross-validated accuracy;
each search's refitted best model's test accuracy is reported, not chosen on.

    python benchmarks/sklearn_compare.py [--quick] [--data-dir DIR] [--out DIR]

`--quick` (the suite's smoke test): 1,000 images, 2 folds, 2 settings, 2 values of C, and
the GridSearchCVs in this process (n_jobs=1).
Writes results/sklearn_compare.json and the figure results/sklearn_compare.png (with
`--quick`, sklearn_compare-quick.*).
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import provenance

import jaxsoftmax as js

RESULTS = pathlib.Path(__file__).parent / "results"
GRID = {"learning_rate": [0.5, 1.0, 2.0], "alpha": [0.0, 1e-5, 1e-4], "momentum": [0.0, 0.5, 0.9]}
QUICK_GRID = {"learning_rate": [0.5, 2.0]}
CS = list(np.logspace(-4, 4, 9))


def peers() -> dict:
    """The classifiers of (a), each as its best user sets it up."""
    return {
        "SoftmaxClassifier": lambda: js.SoftmaxClassifier(),
        "LogisticRegression (lbfgs, converged)": lambda: LogisticRegression(max_iter=1000),
        "SGDClassifier (log_loss, OvR)": lambda: SGDClassifier(
            loss="log_loss", n_jobs=-1, random_state=0
        ),
    }


def timed(fit) -> tuple[object, float]:
    start = time.perf_counter()
    fitted = fit()
    return fitted, time.perf_counter() - start


def compare_fits(splits: dict) -> list[dict]:
    """(a): every peer on every dataset, its fit time and test accuracy."""
    rows = []
    for data, (x, y, xt, yt, scale) in splits.items():
        for name, make in peers().items():
            model = make_pipeline(StandardScaler(), make()) if scale else make()
            fitted, seconds = timed(lambda: model.fit(x, y))  # noqa: B023
            rows.append({"data": data, "model": name, "fit_s": round(seconds, 3),
                         "test_accuracy": float(fitted.score(xt, yt))})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def compare_searches(x, y, xt, yt, grid: dict, cs: list, folds: int, jobs: int) -> list[dict]:
    """(b): the three searches on the same folds (the GridSearchCVs in `jobs` processes)."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    searches = {
        "SoftmaxSearchCV": lambda: js.SoftmaxSearchCV(js.SoftmaxClassifier(), grid, cv=cv),
        "SoftmaxSearchCV, halving": lambda: js.SoftmaxSearchCV(
            js.SoftmaxClassifier(), grid, cv=cv, halving=True
        ),
        "GridSearchCV(SoftmaxClassifier)": lambda: GridSearchCV(
            js.SoftmaxClassifier(), grid, cv=cv, n_jobs=jobs
        ),
        "GridSearchCV(LogisticRegression)": lambda: GridSearchCV(
            LogisticRegression(max_iter=1000), {"C": cs}, cv=cv, n_jobs=jobs
        ),
    }
    rows = []
    for name, make in searches.items():
        fitted, seconds = timed(lambda: make().fit(x, y))  # noqa: B023
        rows.append({
            "search": name, "folds": folds,
            "settings": getattr(fitted, "n_candidates_", [len(fitted.cv_results_["params"])])[0],
            "wall_s": round(seconds, 3), "best_cv_accuracy": float(fitted.best_score_),
            "best_params": {k: float(v) for k, v in fitted.best_params_.items()},
            "refit_test_accuracy": float(fitted.score(xt, yt)),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def figure(document: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = document["searches"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for row in rows:
        ax.scatter(row["wall_s"], 100 * row["best_cv_accuracy"], s=60, label=row["search"])
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.2)
    ax.set_xlabel("wall time of the search (s, log scale)")
    ax.set_ylabel("best CV accuracy (%)")
    ax.set_title(f"MNIST, {rows[0]['folds']} folds: cross-validated searches")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (the suite's)")
    parser.add_argument("--data-dir", help="folder of the MNIST IDX files (default: lookup)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    mnist = js.load_dataset("mnist", data_dir=args.data_dir)
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255  # noqa: E731
    x, y, xt, yt = (flat(mnist.train_images), mnist.train_labels, flat(mnist.test_images),
                    mnist.test_labels)  # fmt: skip
    grid, cs, folds, jobs = GRID, CS, 5, -1
    if args.quick:
        x, y, xt, yt = x[:1000], y[:1000], xt[:500], yt[:500]
        grid, cs, folds, jobs = QUICK_GRID, CS[4:6], 2, 1
    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    cx, cxt, cy, cyt = train_test_split(cancer_x, cancer_y, test_size=0.25, stratify=cancer_y,
                                        random_state=0)  # fmt: skip
    splits = {"MNIST": (x, y, xt, yt, False), "breast cancer": (cx, cy, cxt, cyt, True)}
    document = {
        "provenance": provenance.provenance(),
        "quick": args.quick,
        "examples": {"mnist_train": len(x), "mnist_test": len(xt), "cancer_train": len(cx)},
        "fits": compare_fits(splits),
        "searches": compare_searches(x, y, xt, yt, grid, cs, folds, jobs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sklearn_compare-quick" if args.quick else "sklearn_compare"
    (args.out / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")
    figure(document, args.out / f"{name}.png")
    return document


if __name__ == "__main__":
    main()
