"""When a model has diverged: the rule, applied on the host to each chunk's metrics.

A linear softmax model with a stable loss rarely produces NaN: a far too large step
size makes the loss explode (about 1e9 against 230 at the start for lr 1e6) while the
weights stay finite, and only absurd values (around 1e37) overflow. So a model counts
as diverged at the first step where either

- its training loss, its test or validation loss or its parameters are not finite, or
- its training loss has stayed above FACTOR times its first step's loss for a whole
  evaluation window: `eval_every` consecutive steps, but at least MIN_WINDOW (and
  at most the whole run); the divergence step is then the first step of that stretch.

(A single batch's loss may spike: at the tutorial's loss scale, learning rate 0.05
has lone steps at 14 times the start and still reaches 89 %, so one step is never enough.)

The models of a sweep are independent, so one that diverges leaves the others as
they would have been without it.
"""

import numpy as np

FACTOR = 10.0
MIN_WINDOW = 10


def window(eval_every: int, steps: int) -> int:
    """Steps the loss must stay high for: the evaluation window, at least MIN_WINDOW."""
    return min(max(eval_every, MIN_WINDOW), steps)


def update(
    diverged_at: np.ndarray,
    high_steps: np.ndarray,
    initial_loss: np.ndarray,
    *,
    steps: np.ndarray,
    train_loss: np.ndarray,
    eval_steps: np.ndarray,
    eval_loss: np.ndarray,
    params_finite: np.ndarray,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Applies the rule to one chunk of K models' metrics.

    Args:
      diverged_at: (K,) int, the step each model diverged at so far, 0 if it has not.
      high_steps: (K,) int, how many steps up to this chunk had a loss above the
        threshold, counted back from the chunk's start.
      initial_loss: (K,) the training loss of each model's first step.
      steps: (S,) the steps of this chunk; train_loss: (S, K).
      eval_steps: (E,) the steps evaluated in this chunk; eval_loss: (E, K), the loss on
        an evaluated split (the test set's or the validation split's; NaN if either is).
      params_finite: (K,) bool, whether the parameters after the chunk are finite.
      window: steps the loss must stay high for.

    Returns:
      The new `diverged_at` and `high_steps`.
    """
    found = np.zeros(diverged_at.shape, np.int64)

    def note(candidates):  # keep the earliest step found for each model (0: none)
        nonlocal found
        earlier = (candidates > 0) & ((found == 0) | (candidates < found))
        found = np.where(earlier, candidates, found)

    with np.errstate(invalid="ignore", over="ignore"):
        bad_train = ~np.isfinite(train_loss)
        note(np.where(bad_train.any(axis=0), steps[bad_train.argmax(axis=0)], 0))
        bad_test = ~np.isfinite(eval_loss)
        if len(eval_steps) and len(eval_loss):  # a run may evaluate no split at all
            note(np.where(bad_test.any(axis=0), eval_steps[bad_test.argmax(axis=0)], 0))
        note(np.where(params_finite, 0, steps[-1]))
        high = bad_train | (train_loss > FACTOR * initial_loss)
    # Length of the stretch of high losses ending at each row, carried over from
    # earlier chunks: rows since the last row that was not high (or since the start).
    rows = np.arange(len(steps))[:, None]
    last_low = np.maximum.accumulate(np.where(high, -1, rows), axis=0)
    run = np.where(last_low >= 0, rows - last_low, rows + 1 + np.asarray(high_steps, np.int64))
    reached = run == window  # a stretch reaches the window once, at its window-th step
    first = reached.argmax(axis=0)
    note(np.where(reached.any(axis=0), steps[first] - window + 1, 0))
    run = run[-1]
    # A stretch of high losses is seen only at its end, after which an earlier step may
    # be found than one already recorded: keep the earliest.
    earlier = (found > 0) & ((diverged_at == 0) | (found < diverged_at))
    return np.where(earlier, found, diverged_at), run
