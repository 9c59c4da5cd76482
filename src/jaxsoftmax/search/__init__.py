"""Hyperparameter search: search spaces, successive halving, and `--auto`'s
search-choose-retrain recipe."""
