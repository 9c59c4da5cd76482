"""TensorBoard summaries, written with tensorboardX at the edge of the program.

Layout: one run per learning rate and split, `<logdir>/lr=<value>/train` and
`<logdir>/lr=<value>/test`, each with the scalars `loss` and `accuracy`, so
TensorBoard overlays the sweep.
"""

import contextlib
import os
import pathlib
from collections.abc import Sequence

from tensorboardX import SummaryWriter

from jaxsoftmax.sweep import ChunkReport


def run_name(learning_rate_label: str) -> str:
    """The TensorBoard run of one learning rate, e.g. `lr=0.005`."""
    return f"lr={learning_rate_label}"


class SweepSummaries(contextlib.AbstractContextManager):
    """Writes a sweep's metrics as TensorBoard scalars; use as a context manager.

    Args:
      logdir: the run's log directory.
      labels: one label per model, as the user wrote its learning rate.
    """

    def __init__(self, logdir: str | os.PathLike, labels: Sequence[str]):
        self._writers = {}
        for label in labels:
            for split in ("train", "test"):
                path = pathlib.Path(logdir) / run_name(label) / split
                self._writers[label, split] = SummaryWriter(str(path), flush_secs=30)
        self._labels = list(labels)

    def write_chunk(self, report: ChunkReport) -> None:
        """Adds one chunk's training (every step) and test (every evaluation) scalars."""
        for split, steps, metrics in (
            ("train", report.steps, report.train),
            ("test", report.eval_steps, report.test),
        ):
            for k, label in enumerate(self._labels):
                writer = self._writers[label, split]
                for row, step in enumerate(steps.tolist()):
                    writer.add_scalar("loss", float(metrics.loss[row, k]), step)
                    writer.add_scalar("accuracy", float(metrics.accuracy[row, k]), step)

    def close(self) -> None:
        """Flushes and closes every writer."""
        for writer in self._writers.values():
            writer.close()

    def __exit__(self, *exc_info):
        self.close()
