"""What a command-line run is: its `SweepConfig` and its `Settings`, from the flags or
from the checkpoint of the run it resumes."""

import argparse
import dataclasses
import pathlib

from jaxsoftmax.data import load as data
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.outputs import logdirs
from jaxsoftmax.search import spaces as search
from jaxsoftmax.sweep import grid, memory
from jaxsoftmax.sweep.config import DEFAULT_CHUNK_STEPS, DEFAULT_LEARNING_RATES, SweepConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """What the command line keeps in a checkpoint beside the sweep's config, so that
    `--resume LOGDIR` needs nothing else.

    Attributes:
      run_names: each model's TensorBoard run name (values as the user wrote them).
      dataset: the dataset's name; source: `idx` or `tfds`; data_dir: its folder, if given.
      num_classes: the class count the user gave, if any.
      summaries: whether TensorBoard events are written.
      checkpoint_every: save a checkpoint after about every this many steps.
      resumes: how many times the run has been resumed.
      strategy: `halving` or `random` for a search, else None; eta, min_steps: halving's.
      auto: for the retraining of an `--auto` run, what its search found (see
        `launch.auto_search`), else None.
      layout: `--layout`: the weight layout of the plans made for the run (a search
        plans each rung when it starts it, a resumed one too).
    """

    run_names: tuple[str, ...]
    dataset: str
    source: str
    data_dir: str | None
    num_classes: int | None
    summaries: bool
    checkpoint_every: int
    resumes: int = 0
    strategy: str | None = None
    eta: int = 3
    min_steps: int | None = None
    auto: dict | None = None
    layout: str = "auto"

    def halving(self):
        """The halving rule of a halving search (else None)."""
        if self.strategy != "halving":
            return None
        from jaxsoftmax.search.spaces import Halving

        return Halving(eta=self.eta, min_steps=self.min_steps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"run_names": list(self.run_names)}

    @classmethod
    def from_checkpoint(cls, extra: dict, num_models: int, path) -> "Settings":
        """The settings a checkpoint's `extra` holds (for `num_models` models), checked,
        with `resumes` counted up."""
        if not isinstance(extra.get("settings"), dict):
            raise CheckpointError(
                f"{path} was not written by the command line; resume it in Python"
            )
        # Checkpoints from before searches (05a549c) hold no search fields: not a search.
        # Nor (before 03bddc5) a layout: those plans were the backend's default, kept in
        # the checkpoint; a search's later rungs now measure.
        extra = {"strategy": None, "eta": 3, "min_steps": None, "auto": None,
                 "layout": "auto"} | extra["settings"]  # fmt: skip
        kinds = {
            "run_names": list, "dataset": str, "source": str, "data_dir": (str, type(None)),
            "num_classes": (int, type(None)), "summaries": bool, "checkpoint_every": int,
            "resumes": int, "strategy": (str, type(None)), "eta": int,
            "min_steps": (int, type(None)), "auto": (dict, type(None)), "layout": str,
        }  # fmt: skip
        if set(extra) != set(kinds):
            raise CheckpointError(
                f"{path} was not written by the command line; resume it in Python"
            )
        if (
            not all(isinstance(extra[key], kind) for key, kind in kinds.items())
            or len(extra["run_names"]) != num_models
            or not all(isinstance(name, str) for name in extra["run_names"])
            or extra["source"] not in data.SOURCES
            or extra["checkpoint_every"] < 1
            or extra["resumes"] < 0
            or extra["strategy"] not in (None, "halving", "random")
            or extra["layout"] not in LAYOUT_CHOICES
        ):
            raise CheckpointError(f"checkpoint {path} is damaged (its command-line settings)")
        values = extra | {"run_names": tuple(extra["run_names"]), "resumes": extra["resumes"] + 1}
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Session:
    """What this invocation asks for beyond the run itself (not kept in a checkpoint):
    where it writes (`logdir`, or the `resume` folder; `overwrite`), how many models a
    program may hold, whether the compilation cache is used, `--auto`'s budget and seed,
    and whether the terminal hears about progress."""

    logdir: pathlib.Path | None
    resume: pathlib.Path | None
    overwrite: bool
    max_models_per_slice: int | None
    compilation_cache: bool
    time_budget: float
    seed: int
    quiet: bool

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> "Session":
        return cls(
            logdir=args.logdir, resume=args.resume, overwrite=args.overwrite,
            max_models_per_slice=args.max_models_per_slice,
            compilation_cache=not args.no_compilation_cache, time_budget=args.time_budget,
            seed=args.seed, quiet=args.quiet,
        )  # fmt: skip


def settings_from_flags(args: argparse.Namespace) -> tuple[SweepConfig | None, Settings, None]:
    """The config and settings the flags ask for: a grid, or a search (`--search`); for
    `--auto`, no config (its search makes one: see `launch.auto_search`)."""
    if args.auto:
        return None, Settings(
            run_names=(), dataset=args.dataset or _default_dataset(args), source=args.source,
            data_dir=None, num_classes=args.num_classes, summaries=not args.no_summaries,
            checkpoint_every=args.checkpoint_every, layout=args.layout,
        ), None  # fmt: skip
    searching = args.search is not None
    settings = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "eval_every": args.eval_every,
        "loss_scale": args.loss_scale,
        "init_scale": args.init_scale,
        "schedule": args.schedule or ("cosine" if searching else "constant"),
        "chunk_steps": min(DEFAULT_CHUNK_STEPS, args.checkpoint_every),
        "validation": args.validation if args.validation is not None else 10_000 * searching,
    }
    if searching:
        if args.grid is not None or args.learning_rates is not None:
            raise ConfigError("give --search or a grid (--grid, --learning-rates), not both")
        config = search.search_config(
            args.search, args.trials, seed=args.seed, evaluate_test=False, **settings
        )
        labels = None
    else:
        config, labels = _grid_config(args, settings)
    # Its metrics alone, before a name is made for each model (the data is not read yet).
    memory.check_fits(config, 0, 0, keep_params=False, models_at_once=0)
    min_steps = None
    if searching and args.strategy == "halving":
        min_steps = args.min_steps or search.default_min_steps(
            config.steps, config.eval_every, args.eta
        )
        search.Halving(eta=args.eta, min_steps=min_steps).check(config)
    named = Settings(
        run_names=tuple(grid.run_names(config, labels)),
        dataset=args.dataset or _default_dataset(args),
        source=args.source,
        data_dir=None,
        num_classes=args.num_classes,
        summaries=not args.no_summaries,
        checkpoint_every=args.checkpoint_every,
        strategy=args.strategy if searching else None,
        eta=args.eta,
        min_steps=min_steps,
        layout=args.layout,
    )
    return config, named, None


def _grid_config(args: argparse.Namespace, settings: dict) -> tuple[SweepConfig, dict]:
    labels = dict(args.grid or {})
    if args.learning_rates is not None:
        if "learning_rate" in labels:
            raise ConfigError("give the learning rates with --grid or --learning-rates, not both")
        labels["learning_rate"] = args.learning_rates
    labels.setdefault("learning_rate", tuple(map(str, DEFAULT_LEARNING_RATES)))
    if "seed" in labels and args.seed != SweepConfig().seed:
        raise ConfigError("give the seed with --grid or --seed, not both")
    seed = args.seed if "seed" not in labels else 0
    return SweepConfig.from_grid(grid.grid_values(labels), seed=seed, **settings), labels


def settings_from_checkpoint(args: argparse.Namespace):
    """The config, settings and checkpoint of the run in `--resume LOGDIR`."""
    from jaxsoftmax.sweep import checkpoint as checkpoints

    if not args.resume.is_dir():
        raise ConfigError(f"--resume {args.resume}: no such folder")
    path = args.resume / logdirs.CHECKPOINT_FILE
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint in {args.resume}; --resume takes the --logdir of a stopped run"
        )
    checkpoint, extra = checkpoints.load(path)
    config = checkpoint.config  # a search's: every trial's
    settings = Settings.from_checkpoint(extra, config.num_models, path)
    if checkpoint.finished and logdirs.holds_finished_run(args.resume):
        raise ConfigError(f"the run in {args.resume} has finished; there is nothing to resume")
    return config, settings, checkpoint


def _default_dataset(args: argparse.Namespace) -> str:
    """mnist, or the name of the folder of IDX files `--data-dir` gives."""
    if args.data_dir is None or args.source == "tfds":  # tfds: --data-dir is tfds's own
        return "mnist"
    return args.data_dir.resolve().name or "data"


# The flags that may come with --resume; every other flag is taken from the checkpoint.
WITH_RESUME = (
    "resume",
    "data_dir",
    "quiet",
    "no_compilation_cache",
    "coordinator",
    "num_processes",
    "process_id",
)
# The flags that may come with --auto; it chooses the training settings itself.
WITH_AUTO = (
    "auto",
    "time_budget",
    "seed",
    "dataset",
    "num_classes",
    "data_dir",
    "source",
    "logdir",
    "overwrite",
    "no_summaries",
    "quiet",
    "no_compilation_cache",
    "checkpoint_every",
    "max_models_per_slice",
    "layout",
)
# plan.AUTO and layouts.LAYOUTS, written out: those modules import JAX, which --help need not.
LAYOUT_CHOICES = ("auto", "class_major", "feature_major")
# The flags a search takes, and what they need.
FOR_SEARCH = {"trials": "--search", "strategy": "--search", "eta": "--strategy halving",
              "min_steps": "--strategy halving", "time_budget": "--auto"}  # fmt: skip


def check_together(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits with one line where flags given together do not go together."""
    given = [name for name, value in vars(args).items() if value != parser.get_default(name)]
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    for name in given:
        if args.resume is not None and name not in WITH_RESUME:
            parser.error(f"--resume takes {flag(name)} from the checkpoint; leave it out")
        if args.auto and name not in WITH_AUTO:
            parser.error(f"--auto chooses {flag(name)} itself; leave it out")
        needs = FOR_SEARCH.get(name)
        if (
            needs
            and not args.auto
            and (
                args.search is None
                or (needs == "--strategy halving" and args.strategy != "halving")
            )
        ):
            parser.error(f"{flag(name)} is for {needs}; give that too, or leave it out")
