"""The TensorFlow 1.4 tutorial `softmax.py` as a whole program, TensorBoard and all.

What the README's first comparison times against `python -m jaxsoftmax.train --eval-every 1`:
MNIST read from its IDX files as `input_data` did (float32 pixels in [0, 1], one-hot
labels); `y = softmax(x W + b)`, W and b zeros; `-reduce_mean(y_ * log(y)) * 1000`;
`GradientDescentOptimizer`; batch 100; 1000 steps for each of the learning rates 0.002,
0.005 and 0.008, one after another, each in its own graph, session and `FileWriter`.
Every step writes the training batch's loss and accuracy and the histograms of W and b
with the step, then evaluates the whole test set (10,000 images) for its loss and accuracy
summaries; the first batch's images go in once. Minibatches follow `peers.minibatch_indices`
(a NumPy permutation per epoch, as `input_data.next_batch` did), seed 0 for every rate.

    python benchmarks/tf1_tutorial.py DATA_DIR LOGDIR [--steps 1000] [--save FILE]

`--save FILE` writes each rate's final W and b and its test accuracy at every step (.npz),
for the tests' float64 oracle.
"""

import argparse
import gzip
import pathlib
import sys

import numpy as np

LEARNING_RATES = (0.002, 0.005, 0.008)
BATCH_SIZE = 100


def read_idx(path: pathlib.Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=pathlib.Path)
    parser.add_argument("logdir", type=pathlib.Path)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--save", type=pathlib.Path)
    args = parser.parse_args(argv)

    import tensorflow as tf

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from peers import minibatch_indices

    v1 = tf.compat.v1
    v1.disable_eager_execution()  # this process is the tutorial alone: graph mode throughout
    images = read_idx(args.data_dir / "train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = read_idx(args.data_dir / "train-labels-idx1-ubyte.gz", 8)
    test_images = read_idx(args.data_dir / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    test_labels = read_idx(args.data_dir / "t10k-labels-idx1-ubyte.gz", 8)
    train_x, test_x = images.astype(np.float32) / 255.0, test_images.astype(np.float32) / 255.0
    train_y, test_y = (
        np.eye(10, dtype=np.float32)[labels],
        np.eye(10, dtype=np.float32)[test_labels],
    )
    order = minibatch_indices(len(train_x), args.steps, BATCH_SIZE, seed=0)

    saved = {}
    for rate in LEARNING_RATES:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [None, 784], name="x-input")
            y_ = v1.placeholder(tf.float32, [None, 10], name="y-input")
            with v1.name_scope("input_reshape"):
                image_summary = v1.summary.image("input", tf.reshape(x, [-1, 28, 28, 1]), 10)
            with v1.name_scope("softmax_linear_model"):
                weights = tf.Variable(tf.zeros([784, 10]), name="W")
                biases = tf.Variable(tf.zeros([10]), name="b")
                y = tf.nn.softmax(tf.matmul(x, weights) + biases)
            with v1.name_scope("cross_entropy_loss"):
                cross_entropy = -tf.reduce_mean(y_ * tf.math.log(y)) * 1000.0
            with v1.name_scope("accuracy"):
                correct = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
                accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
            train_step = v1.train.GradientDescentOptimizer(rate).minimize(cross_entropy)
            train_summaries = v1.summary.merge([
                v1.summary.scalar("train/loss", cross_entropy),
                v1.summary.scalar("train/accuracy", accuracy),
                v1.summary.histogram("weights", weights),
                v1.summary.histogram("biases", biases),
            ])  # fmt: skip
            test_summaries = v1.summary.merge([
                v1.summary.scalar("test/loss", cross_entropy),
                v1.summary.scalar("test/accuracy", accuracy),
            ])  # fmt: skip
            initialise = v1.global_variables_initializer()
        writer = v1.summary.FileWriter(str(args.logdir / f"lr={rate}"), graph)
        with v1.Session(graph=graph) as session:
            session.run(initialise)
            writer.add_summary(session.run(image_summary, {x: train_x[order[0]]}), 0)
            test_accuracy = []
            for step, batch in enumerate(order):
                summary, _ = session.run([train_summaries, train_step],
                                         {x: train_x[batch], y_: train_y[batch]})  # fmt: skip
                writer.add_summary(summary, step)
                summary, value = session.run([test_summaries, accuracy], {x: test_x, y_: test_y})
                writer.add_summary(summary, step)
                test_accuracy.append(value)
            saved[f"w{rate}"], saved[f"b{rate}"] = session.run([weights, biases])
            saved[f"test_accuracy{rate}"] = np.array(test_accuracy)
        writer.close()
        print(f"learning rate {rate}: test accuracy {test_accuracy[-1]:.4f}", flush=True)
    if args.save is not None:
        np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
