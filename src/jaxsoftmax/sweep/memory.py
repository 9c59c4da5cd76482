"""What a sweep will hold in memory, estimated before anything is allocated, and a
one-line refusal where it is more than the machine has free."""

from jaxsoftmax.errors import ConfigError

FLOAT = 4  # bytes of a float32
# The device holds each model's parameters about this many times over while it steps
# (parameters, gradients, updates), and once more for a momentum trace.
STEP_COPIES = 3


def estimate(config, num_features: int, num_classes: int, *, keep_params: bool,
             models_at_once: int | None = None) -> dict[str, int]:  # fmt: skip
    """Bytes, by part: `metrics` (every model's training loss and accuracy at every step,
    its evaluations), `params` (every model's final parameters, if kept), `training`
    (the models trained at once: their parameters as a step holds them), `analysis`
    (one model's confusion matrix)."""
    models = config.num_models
    at_once = models if models_at_once is None else min(models, models_at_once)
    per_model = (num_features * num_classes + num_classes) * FLOAT
    evaluations = -(-config.steps // config.eval_every)  # counted, not listed
    evaluations *= 2 * (1 + bool(config.validation))
    copies = STEP_COPIES + bool(config.uses_momentum)
    return {
        "metrics": models * (2 * config.steps + 2 * evaluations) * FLOAT,
        "params": models * per_model if keep_params else 0,
        "training": at_once * per_model * copies,
        "analysis": num_classes * num_classes * 8,
    }


def check_fits(config, num_features: int, num_classes: int, *, keep_params: bool,
               models_at_once: int | None = None) -> None:  # fmt: skip
    """Raises ConfigError, in one line, where `estimate` is more than the free memory."""
    from jaxsoftmax.data.idx import available_memory

    free = available_memory()
    parts = estimate(config, num_features, num_classes, keep_params=keep_params,
                     models_at_once=models_at_once)  # fmt: skip
    total = sum(parts.values())
    if free is None or total <= free:
        return
    largest = max(parts, key=parts.get)
    advice = {
        "metrics": "train fewer models or steps (a search with `halving` keeps fewer)",
        "params": "train fewer models",
        "training": "train fewer models at once (`max_models_per_slice`) or fewer classes",
        "analysis": "use fewer classes",
    }[largest]
    raise ConfigError(
        f"this sweep would need about {total / 2**30:,.1f} GiB of memory ({config.num_models:,} "
        f"models, {config.steps:,} steps, {num_classes:,} classes; most of it {largest}), "
        f"more than the {free / 2**30:.1f} GiB free; {advice}"
    )
