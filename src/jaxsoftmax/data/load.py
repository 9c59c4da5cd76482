"""Datasets: MNIST-format images and labels, found on disk, fetched, or loaded via TFDS.

Lookup order for `load_dataset(name)` with the default `source="idx"`:

1. `data_dir`, a folder holding the four IDX files (raw or .gz);
2. `$JAXSOFTMAX_DATA_DIR/<name>`, a root with one folder per dataset;
3. the user cache, `$XDG_CACHE_HOME/jaxsoftmax/<name>` (default `~/.cache/jaxsoftmax/<name>`);
4. the system dataset folder `/usr/share/datasets/<name with - for _>` (Debian's packages);
5. a download into the user cache, verified against known SHA-256 sums.
"""

import os
import pathlib
from collections.abc import Callable, Mapping

from jaxsoftmax.data import catalog
from jaxsoftmax.data.dataset import (  # noqa: F401 (re-exported: data.describe, ...)
    VALIDATION_STREAM,
    Dataset,
    default_class_names,
    describe,
    make_dataset,
)
from jaxsoftmax.data.idx import read_images, read_labels
from jaxsoftmax.errors import DataError, DataNotFound

SOURCES = ("idx", "tfds")
SYSTEM_DATASETS_DIR = pathlib.Path("/usr/share/datasets")


def user_cache_dir(environ: Mapping[str, str] | None = None) -> pathlib.Path:
    """The jaxsoftmax folder of the user cache, honouring XDG_CACHE_HOME."""
    environ = os.environ if environ is None else environ
    root = environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(root) / "jaxsoftmax"


def candidate_dirs(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[pathlib.Path]:
    """The folders searched for a dataset's IDX files, in order.

    Args:
      name: dataset name; only used to form per-dataset folder names.
      data_dir: a folder given explicitly; when set it is the only candidate.
      environ: the environment to read JAXSOFTMAX_DATA_DIR and XDG_CACHE_HOME from
        (default: the process environment).
    """
    if data_dir is not None:
        return [pathlib.Path(data_dir)]
    environ = os.environ if environ is None else environ
    dirs = []
    if environ.get("JAXSOFTMAX_DATA_DIR"):
        dirs.append(pathlib.Path(environ["JAXSOFTMAX_DATA_DIR"]) / name)
    dirs.append(user_cache_dir(environ) / name)
    spec = catalog.DATASETS.get(name)
    system_name = spec.system_dir_name if spec else name.replace("_", "-")
    dirs.append(SYSTEM_DATASETS_DIR / system_name)
    return dirs


def find_idx_files(folder: pathlib.Path) -> dict[str, pathlib.Path] | None:
    """The four standard IDX files in `folder` (raw or .gz), or None if any is missing."""
    found = {}
    for stem in catalog.IDX_FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def _subfolders(folder: pathlib.Path) -> list[pathlib.Path]:
    try:
        return [sub for sub in folder.iterdir() if sub.is_dir()]
    except OSError:
        return []


def load_idx_folder(
    folder: str | os.PathLike, *, name: str | None = None, num_classes: int | None = None
) -> Dataset:
    """Loads and cross-checks the four IDX files of an MNIST-format dataset.

    Image size comes from the data, and so does the class count unless the catalog
    knows the dataset by `name` or `num_classes` is given (see `make_dataset`).

    Raises:
      DataError: a file is missing, corrupt, or the files disagree with each other.
    """
    folder = pathlib.Path(folder)
    files = find_idx_files(folder)
    if files is None and name and find_idx_files(folder / name) is not None:
        folder = folder / name  # the folder of datasets, as JAXSOFTMAX_DATA_DIR names it
        files = find_idx_files(folder)
    if files is None:
        missing = [
            stem
            for stem in catalog.IDX_FILES
            if not (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file()
        ]
        inside = sorted(sub.name for sub in _subfolders(folder) if find_idx_files(sub))
        hint = f"; it holds {', '.join(inside)}: give the one to use" if inside else ""
        raise DataError(
            f"{folder}: missing IDX file(s) {', '.join(missing)}; "
            f"a data folder must hold the four standard files (optionally .gz){hint}"
        )
    train_images = read_images(files[catalog.TRAIN_IMAGES])
    train_labels = read_labels(files[catalog.TRAIN_LABELS])
    test_images = read_images(files[catalog.TEST_IMAGES])
    test_labels = read_labels(files[catalog.TEST_LABELS])
    return make_dataset(
        name=name or folder.name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=num_classes,
        origin=str(folder),
    )


def load_dataset(
    name: str = "mnist",
    *,
    data_dir: str | os.PathLike | None = None,
    source: str = "idx",
    download: bool = True,
    environ: Mapping[str, str] | None = None,
    report: Callable[[str], None] | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Loads a dataset by name, or from a folder of IDX files.

    Args:
      name: `mnist` or `fashion_mnist`; with `data_dir`, any name (used in messages; a
        catalog name also fixes the class count and class names).
      data_dir: a folder holding the four standard IDX files; skips the lookup.
      source: `idx` (files on disk, fetched if missing) or `tfds` (tensorflow-datasets).
      download: whether to fetch a known dataset that is found nowhere on disk.
      environ: environment for JAXSOFTMAX_DATA_DIR and XDG_CACHE_HOME (default: os.environ).
      report: called with one-line progress messages (e.g. downloads); default silent.
      num_classes: the class count, where the labels alone do not show it (see
        `make_dataset`).

    Returns:
      The dataset, images uint8 (N, height, width) and labels int32 (N,).

    Raises:
      DataError: the dataset is unknown, cannot be found or fetched, or is invalid
        (DataNotFound: found nowhere, with `download` False).
    """
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "tfds":
        return _load_tfds(name, data_dir, download)
    spec = catalog.DATASETS.get(name)
    if data_dir is not None:
        return load_idx_folder(data_dir, name=name, num_classes=num_classes)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; choose {_known()}, or pass `data_dir`=DIR")
    for folder in candidate_dirs(name, environ=environ):
        if find_idx_files(folder) is not None:
            return load_idx_folder(folder, name=name, num_classes=num_classes)
    cache = user_cache_dir(environ) / name
    if not download:
        searched = ", ".join(map(str, candidate_dirs(name, environ=environ)))
        raise DataNotFound(
            f"{name} not found (looked in {searched}); "
            f"put the four IDX files in {cache} or pass `data_dir`=DIR"
        )
    from jaxsoftmax.data import download as fetching

    fetching.fetch_dataset(spec, cache, report=report)
    return load_idx_folder(cache, name=name, num_classes=num_classes)


def _load_tfds(name: str, data_dir, download: bool) -> Dataset:
    from jaxsoftmax.data import tfds_source

    spec = catalog.DATASETS.get(name)
    if spec is None:
        raise DataError(f"unknown dataset {name!r} for `source`=tfds; choose {_known()}")
    arrays = tfds_source.load_tfds_arrays(
        spec, data_dir=None if data_dir is None else str(data_dir), download=download
    )
    keys = ("train_images", "train_labels", "test_images", "test_labels", "num_classes")
    return make_dataset(name=name, origin="tfds", **dict(zip(keys, arrays, strict=True)))


def _known() -> str:
    return " or ".join(catalog.DATASETS)
