"""The command line `python -m jaxsoftmax.train` (also `jaxsoftmax-train`).

Flags are parsed into a `SweepConfig` and typed `Settings` (or both come from a
checkpoint with `--resume`); then the same `SweepRun` loop a Python user drives runs,
its outputs written by `outputs.RunOutputs`. User mistakes end with one line on stderr
and a non-zero exit, never a traceback (see `cmdline`).
"""

import argparse
import concurrent.futures
import dataclasses
import signal
import sys
import time

from jaxsoftmax.cli import common as cmdline
from jaxsoftmax.cli import interrupts
from jaxsoftmax.cli import settings as flag_rules
from jaxsoftmax.cli.settings import Session, settings_from_checkpoint, settings_from_flags
from jaxsoftmax.data import catalog
from jaxsoftmax.data import load as data
from jaxsoftmax.errors import DataNotFound
from jaxsoftmax.outputs import logdirs, logged
from jaxsoftmax.search import spaces as search
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import (
    DEFAULT_LEARNING_RATES,
    SCHEDULES,
    SweepConfig,
    check_count,
    check_positive,
    check_setting,
)

DEFAULT_CHECKPOINT_EVERY = logged.DEFAULT_CHECKPOINT_EVERY


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help that explains each flag."""
    defaults = SweepConfig()
    setting = lambda name, convert: cmdline.argument_type(  # noqa: E731
        convert, lambda value: check_setting(name, value)
    )
    count = lambda name, least=1: cmdline.argument_type(  # noqa: E731
        int, lambda value: check_count(name, value, least)
    )
    parser = cmdline.OneLineParser(
        "train",
        (
            "Train linear softmax classifiers y = softmax(x W + b) on MNIST-format images, one per "
            "learning rate, all in one compiled JAX program, and log everything for TensorBoard. "
            "The defaults reproduce the TensorFlow tutorial: batch 100, 1000 steps of gradient "
            "descent on 100 x mean cross-entropy, learning rates 0.002, 0.005 and 0.008."
        ),
    )
    training = parser.add_argument_group("training")
    add = training.add_argument
    add(
        "--learning-rates",
        metavar="LR[,LR...]",
        type=cmdline.argument_type(str, lambda text: grid.parse_values("learning_rate", text)),
        help="comma-separated learning rates, trained in parallel, one model each (default: "
        f"{','.join(map(str, DEFAULT_LEARNING_RATES))}); short for --grid learning_rate=...",
    )
    add("--grid", metavar="SPEC", type=cmdline.argument_type(str, grid.parse_grid),
        help="a hyperparameter grid, one model per point, all trained in one program: axes "
        "learning_rate, seed, weight_decay and momentum, e.g. 'learning_rate=0.002,0.005 "
        "seed=0,1,2 weight_decay=0,1e-4 momentum=0,0.9'. Each seed has its own initialisation "
        "and minibatch order; models with the same seed share minibatches. weight_decay adds "
        "weight_decay * w to the gradient of the weights; momentum is SGD's heavy ball",
    )  # fmt: skip
    for flag, convert, metavar, text in (
        ("--steps", int, None, "gradient descent steps per model"),
        ("--batch-size", int, None, "training examples per step, shared by all models"),
        ("--eval-every", int, "N", "evaluate on the full test set every N steps and at the "
         "end (1: like the tutorial)"),
        ("--loss-scale", float, None, "minimise loss-scale x mean cross-entropy; 100 is the "
         "tutorial's loss, so lr 0.005 here equals lr 0.5 on plain mean cross-entropy "
         "(--loss-scale 1)"),
        ("--validation", int, "N", "hold out N training examples (chosen by --seed, the same "
         "for every model) as a validation split, never trained on and evaluated beside the "
         "test set: choose settings on it, report the test set (default: 0; 10000 for "
         "--search and --auto)"),
        ("--seed", int, None, "seeds the minibatch order and random initialisation"),
        ("--init-scale", float, None, "standard deviation of random initial weights; 0 "
         "initialises to zeros"),
    ):  # fmt: skip
        name = flag[2:].replace("-", "_")
        default = None if name == "validation" else getattr(defaults, name)  # see settings
        add(flag, type=setting(name, convert), metavar=metavar, default=default, help=text)
    add(
        "--schedule",
        choices=SCHEDULES,
        help="constant step size (the tutorial's), or a cosine decay from each learning rate "
        "to 0 over the run, so that the last iterate is a stable one (default: constant; "
        "cosine for --search and --auto)",
    )
    searching = parser.add_argument_group("search (choose on the validation split)")
    add = searching.add_argument
    add("--search", metavar="SPACE", type=cmdline.argument_type(str, search.parse_space),
        help="search instead of a grid: each axis a list of values, a uniform range a:b or a "
        "log-uniform range log:a:b, e.g. 'learning_rate=log:1e-4:1e-1 "
        "weight_decay=log:1e-7:1e-3 momentum=0:0.95'; --trials settings are drawn from a "
        "Sobol sequence seeded by --seed",
    )  # fmt: skip
    add("--trials", type=count("--trials"), default=100, metavar="N",
        help="settings a search draws")  # fmt: skip
    add(
        "--strategy",
        choices=search.STRATEGIES,
        default="halving",
        help="halving: every trial trains --min-steps steps, and at each rung the best 1/--eta "
        "by validation accuracy go on, eta times as long, up to --steps; random: every trial "
        "trains every step",
    )
    add("--eta", type=count("--eta", 2), default=3, help="halving keeps 1/eta at each rung")
    add(
        "--min-steps",
        type=count("--min-steps"),
        metavar="R",
        help="steps of halving's first rung, a multiple of --eval-every (default: about "
        "--steps / eta**3)",
    )
    add(
        "--auto",
        action="store_true",
        help="the best linear classifier for the data in about --time-budget seconds: a "
        "halving search over a default space sized to the budget, the chosen setting "
        "retrained on all training data, and a last line with its validation and test "
        "accuracy",
    )
    add("--time-budget", metavar="SECONDS", default=60.0,
        type=cmdline.argument_type(float, lambda v: check_positive("--time-budget", v)),
        help="what --auto may spend, about")  # fmt: skip
    scale = parser.add_argument_group("devices and processes")
    scale.add_argument(
        "--max-models-per-slice",
        "--max-models-per-program",
        dest="max_models_per_slice",
        type=count("max models per slice"),
        metavar="N",
        help="train at most about N models at once, the grid cut into slices run one after "
        "another (same results); default: what fits in half of each device's free memory, "
        "at most 1024 per CPU device. Models are sharded over all devices",
    )
    scale.add_argument(
        "--layout",
        choices=flag_rules.LAYOUT_CHOICES,
        default=flag_rules.LAYOUT_CHOICES[0],
        help="how a sweep holds its weights: class_major ((K*classes, features), fastest on "
        "CPUs), feature_major ((features, K*classes), plain vmap, fastest on the H100 "
        "measured), or auto: the faster of the two for the run's shapes on this device, "
        "measured once and kept in ~/.cache/jaxsoftmax/layouts.json. Results are the same "
        "either way, to float rounding",
    )
    scale.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="join a multi-process run (jax.distributed): the address of process 0; also "
        "from JAX_COORDINATOR_ADDRESS. Every process runs the same command",
    )
    scale.add_argument(
        "--num-processes",
        type=count("--num-processes"),
        metavar="N",
        help="processes in the run (or JAX_NUM_PROCESSES)",
    )
    scale.add_argument(
        "--process-id",
        type=cmdline.argument_type(int, lambda value: check_count("--process-id", value, 0)),
        metavar="I",
        help="this process's index, 0 to N-1 (or JAX_PROCESS_ID); process 0 writes the "
        "summaries and results.json",
    )
    source = parser.add_argument_group("data")
    source.add_argument(
        "--dataset",
        help=f"dataset name: {', '.join(catalog.DATASETS)} (default: mnist, or with --data-dir "
        "the folder's name); a known name also fixes the class count and class names",
    )
    source.add_argument(
        "--num-classes",
        type=count("--num-classes", 2),
        metavar="N",
        help="the data's class count, where its labels do not show it (a split without the "
        "last classes, say); by default the labels' own range, the same in both splits",
    )
    source.add_argument(
        "--data-dir",
        type=cmdline.path_argument,
        metavar="DIR",
        help="a folder holding the four IDX files (train-images-idx3-ubyte, train-labels-idx1-"
        "ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz). Without it: "
        "$JAXSOFTMAX_DATA_DIR/<dataset>, then ~/.cache/jaxsoftmax/<dataset>, then "
        "/usr/share/datasets/<dataset>, then a verified download into the cache",
    )
    source.add_argument(
        "--source",
        choices=data.SOURCES,
        default="idx",
        help="read IDX files, or load through tensorflow-datasets "
        "(needs: pip install 'jaxsoftmax[tfds]')",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--logdir",
        type=cmdline.path_argument,
        metavar="DIR",
        help="where TensorBoard events and results.json go (default: a new folder "
        "runs/softmax/<date-time> per run)",
    )
    output.add_argument(
        "--checkpoint-every",
        type=count("--checkpoint-every"),
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N",
        help="save the whole sweep's state to <logdir>/checkpoint.npz after about every N "
        "steps (a sliced grid counts every slice's steps), at the end (with every model's "
        "trained parameters, up to 512 MiB of them), and on Ctrl-C or SIGTERM, which then "
        "stop after the current chunk (press Ctrl-C twice to quit at once)",
    )
    output.add_argument(
        "--resume",
        type=cmdline.path_argument,
        metavar="LOGDIR",
        help="go on with the interrupted run in LOGDIR from its last checkpoint, with its "
        "settings and data (the same --data-dir, unless given again); the result is the "
        "same (bitwise on a CPU) as had it never stopped",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a --logdir that already holds a run, replacing it",
    )
    output.add_argument(
        "--no-summaries",
        action="store_true",
        help="write no TensorBoard events (results.json only); to time the training alone",
    )
    output.add_argument(
        "--quiet", action="store_true", help="no progress bar or table; errors still go to stderr"
    )
    output.add_argument(
        "--no-compilation-cache",
        action="store_true",
        help="do not keep compiled programs in ~/.cache/jaxsoftmax/jax (they make a second "
        "run start faster)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    start = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    flag_rules.check_together(parser, args)
    with interrupts.StopOnSignal(starting=True) as stops:
        try:
            return cmdline.run_command(lambda: _train(args, start, stops), parser)
        finally:
            logdirs.release()  # the log directory it claimed, for what runs next


def _train(args: argparse.Namespace, start: float, stops: interrupts.StopOnSignal) -> int:
    """The run: settings, data, plan, then the loop; one screen from start to finish."""
    config, settings, resume = (
        settings_from_checkpoint(args) if args.resume else settings_from_flags(args)
    )
    if args.data_dir is not None:  # given again with --resume, say
        settings = dataclasses.replace(settings, data_dir=str(args.data_dir.resolve()))
    session = Session.from_flags(args)
    dataset, times = _prepare(args, session, settings, stops, start)
    from jaxsoftmax.cli import launch
    from jaxsoftmax.outputs import logged
    from jaxsoftmax.outputs import writing as outputs
    from jaxsoftmax.sweep import parallel

    say = _printer(session.quiet)
    say(data.describe(dataset))
    if args.auto:
        config, settings = launch.auto_search(session, dataset, settings, stops)
    run = launch.sweep_run(session, config, settings, resume, dataset, say)
    logdir = launch.logdir(session) if parallel.is_main_process() else None  # writing, now
    with stops.deferred():
        result, extras, timing = logged.log_run(
            run, dataset, logdir, names=settings.run_names, began=start, timing=times,
            summaries=settings.summaries, checkpoint_every=settings.checkpoint_every,
            progress=not session.quiet, checkpoint_extra={"settings": settings.to_dict()},
            resumes=settings.resumes, auto=settings.auto,
            stop_requested=lambda: parallel.any_process(stops.requested is not None),
            stop_note="stopping: saving a checkpoint (Ctrl-C again quits at once)",
        )  # all processes stop at one chunk  # fmt: skip
    if logdir is not None:
        outputs.print_outcome(
            logdir, run, result, timing=timing, names=settings.run_names, quiet=session.quiet
        )
        if settings.auto is not None and not result.interrupted:
            print(launch.auto_outcome(settings.auto, result))
        elif (extras.get("search") or {}).get("chosen") is not None:
            print(launch.search_outcome(extras["search"], result, settings.run_names))
    if result.interrupted:  # this process may have been stopped by another's signal
        return interrupts.Interrupted(stops.requested or signal.SIGTERM).exit_status
    return 0


def _prepare(args, session, settings, stops, start: float) -> tuple[data.Dataset, dict[str, float]]:
    """What comes before training: JAX and the data, read together from local IDX files
    (gunzip lets go of the GIL: about 0.25 s sooner), jax.distributed, the compilation
    cache. A download or TFDS runs after the imports, where Ctrl-C stops it at once.

    Returns:
      The data, and the seconds the imports took and the data took beyond them.
    """
    say = _printer(session.quiet)
    options = {"data_dir": settings.data_dir, "num_classes": settings.num_classes}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = None
        if settings.source == "idx":
            reading = pool.submit(_read_local, settings.dataset, options)
        from jaxsoftmax.cli import launch
        from jaxsoftmax.sweep import parallel

        imported = time.perf_counter()
        parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
        stops.started()  # JAX imported; again as jax.distributed takes SIGTERM for itself
        launch.enable_compilation_cache(session)
        try:
            dataset = reading.result() if reading is not None else None
        except DataNotFound:  # the main thread fetches it (an invalid file was said already)
            dataset = None
    if dataset is None:
        dataset = data.load_dataset(settings.dataset, source=settings.source, report=say, **options)
    return dataset, {"import_s": imported - start, "load_s": time.perf_counter() - imported}


def _read_local(name: str, options: dict) -> data.Dataset:
    """A dataset from local IDX files, its fingerprint (the checkpoint's) hashed too:
    hashlib also lets go of the GIL."""
    dataset = data.load_dataset(name, download=False, **options)
    dataset.fingerprint()
    return dataset


def _printer(quiet: bool):
    """`say(message)`: a line on stderr, unless quiet."""

    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)

    return say
