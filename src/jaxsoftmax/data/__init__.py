"""Data in: the Dataset, arrays a user holds, IDX files, finding and fetching
MNIST-format sets, TFDS, pictures to classify."""
