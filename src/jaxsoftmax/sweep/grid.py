"""Hyperparameter grids in text: the command line's `--grid`, and the run names of its points.

A grid is a mapping from axis name to the values it takes; a sweep trains one model
per point of the Cartesian product. The text form is the command line's `--grid`:

    learning_rate=0.002,0.005,0.008 seed=0,1,2 weight_decay=0,1e-4 momentum=0,0.9

Values are checked by `config.check_axis`, the one owner of their rules.
"""

import re
from collections.abc import Mapping, Sequence

from jaxsoftmax.errors import ConfigError
from jaxsoftmax.sweep.config import AXES, SweepConfig, check_axis, parse_value

_AXIS_TEXT = re.compile(r"^([A-Za-z_]+)=(.*)$")


def parse_values(axis: str, text: str) -> tuple[str, ...]:
    """Parses one axis's comma-separated values, e.g. `0.002,0.005`, into the values as
    written, after checking them.

    Raises:
      ConfigError: a one-line description of what is wrong.
    """
    if axis not in AXES:
        raise ConfigError(f"unknown grid axis {axis!r}; the axes are {', '.join(AXES)}")
    labels = tuple(value.strip() for value in text.split(","))
    if any(not label for label in labels):
        raise ConfigError(f"{axis} has an empty value in {text!r}; separate values with commas")
    check_axis(axis, [parse_value(axis, label) for label in labels])
    return labels


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
        if axis in grid:
            raise ConfigError(f"grid axis {axis} is given twice")
        grid[axis] = parse_values(axis, values_text)
    return grid


def grid_values(grid: Mapping[str, Sequence[str]]) -> dict[str, tuple]:
    """Numbers of a grid as parsed by `parse_grid` (values as written)."""
    return {
        axis: tuple(parse_value(axis, label) for label in labels) for axis, labels in grid.items()
    }


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


def run_names(config: SweepConfig, labels: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """One TensorBoard run name per model of `config`, in the order of `config.points`.

    Args:
      config: the sweep.
      labels: {axis: its values as the user wrote them}, for any axes; others are
        written with `format_value`, and a random search's values with the fewest
        significant digits (3 or more) that tell its trials apart.
    """
    labels = labels or {}
    values, varying, points = config.grid, config.varying, config.points  # each O(models)
    for digits in range(3, 18) if config.trials else [None]:
        names = []
        for point in points:
            written = {axis: labels[axis][values[axis].index(point[axis])] for axis in labels}
            if digits is not None:
                written = {
                    axis: f"{point[axis]:.{digits}g}" for axis in point if axis != "seed"
                } | written
            names.append(run_name(point, written, varying))
        if len(set(names)) == len(names):
            return names
    raise ConfigError("two grid points would get the same run name")
