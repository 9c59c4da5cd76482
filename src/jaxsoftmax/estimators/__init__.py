"""scikit-learn's API over the library: `SoftmaxClassifier` (a fitted one predicts with
NumPy alone; scikit-learn is the `sklearn` extra), and `SoftmaxSearchCV`, its cross-validated
search in one compiled program."""
