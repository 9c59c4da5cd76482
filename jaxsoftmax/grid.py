"""Hyperparameter grids: the axes a sweep can vary, their text form, and run names.

A grid is a mapping from axis name to the values it takes; a sweep trains one model
per point of the Cartesian product. The text form is the command line's `--grid`:

    learning_rate=0.002,0.005,0.008 seed=0,1,2 weight_decay=0,1e-4 momentum=0,0.9
"""

import math
import re
from collections.abc import Mapping, Sequence

from jaxsoftmax.errors import ConfigError

# Axis name -> (SweepConfig field, short name used in run names).
AXES = {
    "learning_rate": ("learning_rates", "lr"),
    "seed": ("seeds", "seed"),
    "weight_decay": ("weight_decays", "wd"),
    "momentum": ("momenta", "momentum"),
}
SEED_RANGE = (-(2**31), 2**31)  # seeds are int32 on the device
_AXIS_TEXT = re.compile(r"^([A-Za-z_]+)=(.*)$")


def check_value(axis: str, value) -> float | int:
    """`value` as a number of `axis`'s kind; raises ConfigError naming the rule it breaks."""
    if axis == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"seed {value!r} is not a whole number")
        if not SEED_RANGE[0] <= value < SEED_RANGE[1]:
            raise ConfigError(f"seed {value} is outside [-2**31, 2**31)")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{axis} {value!r} is not a number")
    value = float(value)
    if axis == "learning_rate" and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"learning rate {value} is not a positive finite number")
    if axis == "weight_decay" and not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"weight decay {value} is not a finite number >= 0")
    if axis == "momentum" and not (math.isfinite(value) and 0 <= value < 1):
        raise ConfigError(f"momentum {value} is not in [0, 1)")
    return value


def check_axis(axis: str, values: Sequence) -> tuple:
    """The values of one axis, checked: at least one, each valid, none twice."""
    if axis not in AXES:
        raise ConfigError(f"unknown grid axis {axis!r}; the axes are {', '.join(AXES)}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{axis} must be a sequence of values, got {values!r}")
    if not values:
        raise ConfigError(f"{axis} is empty; give at least one value")
    checked = tuple(check_value(axis, value) for value in values)
    if len(set(checked)) != len(checked):
        raise ConfigError(f"{axis} lists a value twice: {', '.join(map(str, values))}")
    return checked


def parse_grid(text: str) -> dict[str, tuple[str, ...]]:
    """Parses the `--grid` text into {axis: values as written}, checking every value.

    Axes are separated by spaces, values by commas; each axis at most once.

    Raises:
      ConfigError: a one-line description of what is wrong.
    """
    grid: dict[str, tuple[str, ...]] = {}
    if not text.strip():
        raise ConfigError("the grid is empty; give e.g. 'learning_rate=0.002,0.005 seed=0,1'")
    for part in text.split():
        match = _AXIS_TEXT.match(part)
        if not match:
            raise ConfigError(f"grid part {part!r} is not AXIS=VALUE[,VALUE...]")
        axis, values_text = match.groups()
        if axis not in AXES:
            raise ConfigError(f"unknown grid axis {axis!r}; the axes are {', '.join(AXES)}")
        if axis in grid:
            raise ConfigError(f"grid axis {axis} is given twice")
        labels = tuple(value.strip() for value in values_text.split(","))
        if any(not label for label in labels):
            raise ConfigError(f"grid axis {axis} has an empty value in {values_text!r}")
        check_axis(axis, [_number(axis, label) for label in labels])
        grid[axis] = labels
    return grid


def grid_values(grid: Mapping[str, Sequence[str]]) -> dict[str, tuple]:
    """Numbers of a grid as parsed by `parse_grid` (values as written)."""
    return {axis: tuple(_number(axis, label) for label in labels) for axis, labels in grid.items()}


def _number(axis: str, label: str) -> float | int:
    try:
        return int(label) if axis == "seed" else float(label)
    except ValueError:
        kind = "a whole number" if axis == "seed" else "a number"
        raise ConfigError(f"{axis} {label!r} is not {kind}") from None


def format_value(value: float | int) -> str:
    """How a value appears in run names and tables when the user did not write it."""
    return str(value) if isinstance(value, int) else repr(float(value))


def run_name(point: Mapping[str, float | int], labels: Mapping[str, str], varying) -> str:
    """The TensorBoard run of one grid point: the learning rate and every varying axis.

    E.g. `lr=0.005` for a plain sweep, `lr=0.005,seed=2,wd=0.0001` for a grid.
    """
    parts = []
    for axis, (_, short) in AXES.items():
        if axis == "learning_rate" or axis in varying:
            parts.append(f"{short}={labels.get(axis) or format_value(point[axis])}")
    return ",".join(parts)
