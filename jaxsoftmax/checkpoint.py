"""Saving and loading a sweep's checkpoint: one `.npz` file, written atomically.

The file is a NumPy `.npz` archive (read it with `numpy.load`, no pickles):

- `meta`: UTF-8 JSON as uint8: `format` ("jaxsoftmax-checkpoint"), `version`, the
  sweep's `config`, the `data_fingerprint` (a SHA-256 of the data),
  `max_models` (the limit the grid's slices were planned with), `num_devices`, the
  position (`tile`, `step`), `compile_s`, `train_s`, `state_leaves` (how many),
  `has_params`, and `extra` (anything the caller keeps with it, e.g. the command
  line's run names);
- `state_0`, `state_1`, ...: the training state of the slice in progress (its
  parameters and optimiser state, leading axes seeds x settings);
- `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`: the metrics so far;
- `params_w`, `params_b`: the final parameters of the models done (if kept);
- `diverged_at`, `high_steps`: the divergence bookkeeping (see `divergence`).

It is written to a temporary file beside its destination, flushed to disk, then
renamed over it: a reader finds the previous checkpoint or the new one, whole.
"""

import json
import os
import pathlib
import zipfile

import numpy as np

from jaxsoftmax import files
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.sweep import SweepCheckpoint, SweepConfig

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT = "jaxsoftmax-checkpoint"
VERSION = 1
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def save(path: str | os.PathLike, checkpoint: SweepCheckpoint, extra: dict | None = None) -> None:
    """Writes `checkpoint` (and the JSON-friendly `extra`) to `path`, atomically."""
    path = pathlib.Path(path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": checkpoint.config.to_dict(),
        "data_fingerprint": checkpoint.data_fingerprint,
        "max_models": checkpoint.max_models,
        "num_devices": checkpoint.num_devices,
        "tile": checkpoint.tile,
        "step": checkpoint.step,
        "compile_s": checkpoint.compile_s,
        "train_s": checkpoint.train_s,
        "state_leaves": None if checkpoint.state is None else len(checkpoint.state),
        "has_params": checkpoint.params is not None,
        "extra": extra or {},
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    arrays |= {f"state_{i}": leaf for i, leaf in enumerate(checkpoint.state or [])}
    arrays |= {name: checkpoint.outputs[name] for name in METRICS}
    if checkpoint.params is not None:
        arrays |= {f"params_{name}": values for name, values in checkpoint.params.items()}
    arrays |= {"diverged_at": checkpoint.diverged_at, "high_steps": checkpoint.high_steps}
    with files.atomic_writer(path) as handle:
        np.savez(handle, **arrays)


def load(path: str | os.PathLike) -> tuple[SweepCheckpoint, dict]:
    """Reads a checkpoint `save` wrote; returns it and its `extra`.

    Raises:
      CheckpointError: the file is missing, damaged, or not such a checkpoint.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # Opened here, so that the file is closed however np.load fails.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a jaxsoftmax checkpoint")
            if meta.get("version") != VERSION:
                raise CheckpointError(
                    f"{path} is a version {meta.get('version')} checkpoint; this jaxsoftmax "
                    f"reads version {VERSION}"
                )
            state = None
            if meta["state_leaves"] is not None:
                state = [archive[f"state_{i}"] for i in range(meta["state_leaves"])]
            params = None
            if meta["has_params"]:
                params = {name: archive[f"params_{name}"] for name in ("w", "b")}
            checkpoint = SweepCheckpoint(
                config=SweepConfig.from_dict(meta["config"]),
                data_fingerprint=str(meta["data_fingerprint"]),
                max_models=int(meta["max_models"]),
                num_devices=int(meta["num_devices"]),
                tile=int(meta["tile"]),
                step=int(meta["step"]),
                state=state,
                outputs={name: archive[name] for name in METRICS},
                params=params,
                diverged_at=archive["diverged_at"],
                high_steps=archive["high_steps"],
                compile_s=float(meta["compile_s"]),
                train_s=float(meta["train_s"]),
            )
            wrong = checkpoint.inconsistencies()
            if wrong:
                raise CheckpointError(
                    f"checkpoint {path} is damaged: {', '.join(wrong)} do not fit its settings"
                )
            return checkpoint, dict(meta["extra"])
    except (
        AttributeError,  # a part of the wrong kind, e.g. a list where a mapping belongs
        OSError,
        EOFError,
        ValueError,  # includes ConfigError and JSON errors
        KeyError,
        TypeError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ConfigError):
            reason = f"bad settings: {reason}"
        raise CheckpointError(f"checkpoint {path} is damaged ({reason})") from None
