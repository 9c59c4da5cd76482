"""jaxsoftmax: linear softmax classifiers on MNIST-format data, many hyperparameters at once."""
