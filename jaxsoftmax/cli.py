"""The command line: `python -m jaxsoftmax.train` / `jaxsoftmax-train`.

Parses flags into a SweepConfig, loads the data, trains the sweep with a
progress bar, writes TensorBoard summaries and results.json, prints a table.
User mistakes end with one line on stderr and a non-zero exit, never a traceback.
"""

import argparse
import contextlib
import datetime
import json
import math
import pathlib
import shutil
import signal
import sys
import time

import numpy as np

from jaxsoftmax import catalog, checkpoint, data, grid, interrupts, parallel, results, runtime
from jaxsoftmax.errors import CheckpointError, ConfigError, JaxsoftmaxError
from jaxsoftmax.sweep import DEFAULT_CHUNK_STEPS, DEFAULT_LEARNING_RATES, SweepConfig

EXIT_USAGE = 2
EXIT_DATA = 1
EXIT_INTERRUPTED = 130
DEFAULT_CHECKPOINT_EVERY = 1000
# What --resume takes from the checkpoint, so these flags may not come with it.
RESUME_TAKES = (
    "learning_rates", "grid", "steps", "batch_size", "eval_every", "loss_scale", "seed",
    "init_scale", "schedule", "max_models_per_program", "checkpoint_every", "dataset",
    "source", "logdir", "overwrite", "no_summaries",
)  # fmt: skip
DIVERGED_SHOWN = 5
# The final checkpoint holds every model's trained parameters up to this size.
KEEP_PARAMS_BYTES = 2**29
DEFAULT_LOGDIR_ROOT = pathlib.Path("runs") / "softmax"
MAX_OPEN_FILES = 65536
FILES_IN_RESERVE = 256  # for the rest of the process: libraries, data, the compilation cache


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def learning_rate_list(text: str) -> list[str]:
    """Parses `0.002,0.005` into the values as written; each must be a positive finite number."""
    labels = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not label for label in labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")
    for label in labels:
        try:
            value = float(label)
        except ValueError:
            raise argparse.ArgumentTypeError(f"learning rate {label!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"learning rate {label} must be positive and finite")
    if len(set(map(float, labels))) != len(labels):
        raise argparse.ArgumentTypeError(f"{text!r} lists a learning rate twice")
    return labels


def _number(convert, accept=None, requirement=""):
    """An argparse type: `convert` the text, then check it with `accept` (if given)."""
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if accept is not None and not accept(value):
            raise argparse.ArgumentTypeError(f"{text} must be {requirement}")
        return value

    return parse


_positive_int = _number(int, lambda value: value >= 1, "at least 1")
_positive_float = _number(
    float, lambda value: math.isfinite(value) and value > 0, "positive and finite"
)
_non_negative_float = _number(
    float, lambda value: math.isfinite(value) and value >= 0, "finite and >= 0"
)
_seed = _number(int)


def _grid(text: str) -> dict[str, tuple[str, ...]]:
    try:
        return grid.parse_grid(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help that explains each flag."""
    defaults = SweepConfig()
    parser = _OneLineParser(
        prog="python -m jaxsoftmax.train",
        description=(
            "Train linear softmax classifiers y = softmax(x W + b) on MNIST-format images, one per "
            "learning rate, all in one compiled JAX program, and log everything for TensorBoard. "
            "The defaults reproduce the TensorFlow tutorial: batch 100, 1000 steps of gradient "
            "descent on 100 x mean cross-entropy, learning rates 0.002, 0.005 and 0.008."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--learning-rates",
        type=learning_rate_list,
        metavar="LR[,LR...]",
        help="comma-separated learning rates, trained in parallel, one model each (default: "
        f"{','.join(map(str, DEFAULT_LEARNING_RATES))}); short for --grid learning_rate=...",
    )
    training.add_argument(
        "--grid",
        type=_grid,
        metavar="SPEC",
        help="a hyperparameter grid, one model per point, all trained in one program: axes "
        "learning_rate, seed, weight_decay and momentum, e.g. 'learning_rate=0.002,0.005 "
        "seed=0,1,2 weight_decay=0,1e-4 momentum=0,0.9'. Each seed has its own initialisation "
        "and minibatch order; models with the same seed share minibatches. weight_decay adds "
        "weight_decay * w to the gradient of the weights; momentum is SGD's heavy ball",
    )
    training.add_argument("--steps", type=_positive_int, default=defaults.steps,
                          help="gradient descent steps per model")  # fmt: skip
    training.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size,
                          help="training examples per step, shared by all models")  # fmt: skip
    training.add_argument(
        "--eval-every",
        type=_positive_int,
        default=defaults.eval_every,
        metavar="N",
        help="evaluate on the full test set every N steps and at the end (1: like the tutorial)",
    )
    training.add_argument(
        "--loss-scale",
        type=_positive_float,
        default=defaults.loss_scale,
        help="minimise loss-scale x mean cross-entropy; 100 is the tutorial's loss, so lr 0.005 "
        "here equals lr 0.5 on plain mean cross-entropy (--loss-scale 1)",
    )
    training.add_argument("--seed", type=_seed, default=defaults.seed,
                          help="seeds the minibatch order and random initialisation")  # fmt: skip
    training.add_argument(
        "--init-scale",
        type=_non_negative_float,
        default=defaults.init_scale,
        help="standard deviation of random initial weights; 0 initialises to zeros",
    )
    training.add_argument(
        "--schedule",
        choices=("constant", "cosine"),
        default=defaults.schedule,
        help="constant step size (the tutorial's), or a cosine decay from each learning rate "
        "to 0 over the run",
    )
    scale = parser.add_argument_group("devices and processes")
    scale.add_argument(
        "--max-models-per-program",
        type=_positive_int,
        metavar="N",
        help="train at most about N models at once, the grid cut into slices run one after "
        "another (same results); default: what fits in half of each device's free memory, "
        "at most 1024 per CPU device. Models are sharded over all devices",
    )
    scale.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="join a multi-process run (jax.distributed): the address of process 0; also "
        "from JAX_COORDINATOR_ADDRESS. Every process runs the same command",
    )
    scale.add_argument("--num-processes", type=_positive_int, metavar="N",
                       help="processes in the run (or JAX_NUM_PROCESSES)")  # fmt: skip
    scale.add_argument(
        "--process-id",
        type=_number(int, lambda value: value >= 0, ">= 0"),
        metavar="I",
        help="this process's index, 0 to N-1 (or JAX_PROCESS_ID); process 0 writes the "
        "summaries and results.json",
    )
    source = parser.add_argument_group("data")
    source.add_argument(
        "--dataset",
        default="mnist",
        help=f"dataset name: {', '.join(catalog.DATASETS)}; with --data-dir, any name",
    )
    source.add_argument(
        "--data-dir",
        type=pathlib.Path,
        metavar="DIR",
        help="a folder holding the four IDX files (train-images-idx3-ubyte, train-labels-idx1-"
        "ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz). Without it: "
        "$JAXSOFTMAX_DATA_DIR/<dataset>, then ~/.cache/jaxsoftmax/<dataset>, then "
        "/usr/share/datasets/<dataset>, then a verified download into the cache",
    )
    source.add_argument("--source", choices=data.SOURCES, default="idx",
                        help="read IDX files, or load through tensorflow-datasets "
                        "(needs: pip install 'jaxsoftmax[tfds]')")  # fmt: skip
    output = parser.add_argument_group("output")
    output.add_argument(
        "--logdir",
        type=pathlib.Path,
        metavar="DIR",
        help="where TensorBoard events and results.json go (default: a new folder "
        "runs/softmax/<date-time> per run)",
    )
    output.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N",
        help="save the whole sweep's state to <logdir>/checkpoint.npz after about every N "
        "steps (a sliced grid counts every slice's steps), at the end (with every model's "
        "trained parameters, up to 512 MiB of them), and on Ctrl-C or SIGTERM, which then "
        "stop after the current chunk (press Ctrl-C twice to quit at once)",
    )
    output.add_argument(
        "--resume",
        type=pathlib.Path,
        metavar="LOGDIR",
        help="go on with the interrupted run in LOGDIR from its last checkpoint, with its "
        "settings and data (the same --data-dir, unless given again); the result is the "
        "same (bitwise on a CPU) as had it never stopped",
    )
    output.add_argument("--overwrite", action="store_true",
                        help="reuse a --logdir that already holds a run, replacing it")  # fmt: skip
    output.add_argument(
        "--no-summaries",
        action="store_true",
        help="write no TensorBoard events (results.json only); for timing the training alone",
    )
    output.add_argument("--quiet", action="store_true",
                        help="no progress bar or table; errors still go to stderr")  # fmt: skip
    output.add_argument(
        "--no-compilation-cache",
        action="store_true",
        help="do not keep compiled programs in ~/.cache/jaxsoftmax/jax (they make a second "
        "run start faster)",
    )
    return parser


def grid_labels(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The grid the flags ask for, {axis: values as written}: --grid, with --learning-rates
    and --seed as the short forms of its learning_rate and seed axes."""
    labels = dict(args.grid or {})
    if args.learning_rates is not None:
        if "learning_rate" in labels:
            raise ConfigError("give the learning rates with --grid or --learning-rates, not both")
        labels["learning_rate"] = tuple(args.learning_rates)
    labels.setdefault("learning_rate", tuple(map(str, DEFAULT_LEARNING_RATES)))
    if "seed" in labels and args.seed != SweepConfig().seed:
        raise ConfigError("give the seed with --grid or --seed, not both")
    return labels


def allow_open_files() -> int:
    """Raises this process's open-file limit to its hard limit; returns the limit now."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limit to raise
        return MAX_OPEN_FILES

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    return soft


def new_logdir(root: pathlib.Path = DEFAULT_LOGDIR_ROOT) -> pathlib.Path:
    """Creates and returns a fresh `root/<date-time>` folder; never one that exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise ConfigError(
                f"cannot create a log directory under {root} ({error.strerror or error}); "
                "pass --logdir DIR"
            ) from None
    raise ConfigError(f"cannot create a new log directory under {root}")


def prepare_logdir(path: pathlib.Path, *, overwrite: bool) -> pathlib.Path:
    """Makes sure `path` can take a new run: refuses to mix two runs unless overwriting."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--logdir {path} exists and is not a folder")
    old_runs = sorted(path.glob("lr=*")) if path.is_dir() else []
    kept = [path / results.RESULTS_FILE, path / checkpoint.CHECKPOINT_FILE]
    if any(file.exists() for file in kept) or old_runs:
        if not overwrite:
            go_on = f", or --resume {path} to go on with it" if kept[1].exists() else ""
            raise ConfigError(
                f"--logdir {path} already holds a run; choose another folder or pass "
                f"--overwrite{go_on}"
            )
        # Everything a run writes: its runs, root events, figures and results.json.
        for old in [*old_runs, path / "figures"]:
            shutil.rmtree(old, ignore_errors=True)
        for old in [*path.glob("events.out.tfevents.*"), *kept]:
            old.unlink(missing_ok=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--logdir {path} is not writable ({error.strerror or error})") from None
    return path


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    start = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        for name in RESUME_TAKES:
            if getattr(args, name) != parser.get_default(name):
                flag = "--" + name.replace("_", "-")
                parser.error(f"--resume takes {flag} from the checkpoint; leave {flag} out")

    try:
        with interrupts.StopOnSignal() as stops:
            return _run(args, start, stops)
    except interrupts.Interrupted as interrupted:
        print("interrupted", file=sys.stderr)
        return interrupted.exit_status
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except JaxsoftmaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA
    except OSError as error:
        # The machine refused (disk full, permissions) where no better message was given.
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _saved_settings(extra: dict, path: pathlib.Path, num_models: int) -> dict:
    """The command line's settings kept in a checkpoint's `extra`, checked."""
    kinds = {
        "run_names": list, "dataset": str, "source": str, "data_dir": (str, type(None)),
        "no_summaries": bool, "checkpoint_every": int, "resumes": int,
    }  # fmt: skip
    if not all(key in extra for key in kinds):
        raise CheckpointError(f"{path} was not written by the command line; resume it in Python")
    if (
        not all(isinstance(extra[key], kind) for key, kind in kinds.items())
        or len(extra["run_names"]) != num_models
        or not all(isinstance(name, str) for name in extra["run_names"])
        or extra["source"] not in data.SOURCES
        or extra["checkpoint_every"] < 1
        or extra["resumes"] < 0
    ):
        raise CheckpointError(f"checkpoint {path} is damaged (its command-line settings)")
    return extra


def _finished_results(logdir: pathlib.Path) -> bool:
    """Whether `logdir` holds the results.json of a run that was not interrupted."""
    try:
        document = json.loads((logdir / results.RESULTS_FILE).read_text())
        return document.get("interrupted") is False
    except (OSError, ValueError, AttributeError):
        return False


def _check_writable(path: pathlib.Path) -> None:
    try:
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"{path} is not writable ({error.strerror or error})") from None


def _run(args: argparse.Namespace, start: float, stops: interrupts.StopOnSignal) -> int:
    # Heavy imports wait until the arguments are known to be good.
    import tqdm

    from jaxsoftmax import graph, summaries
    from jaxsoftmax.sweep import check_fits, first_batch, plan_sweep, train_sweep

    resume = None
    if args.resume is not None:
        if not args.resume.is_dir():
            raise ConfigError(f"--resume {args.resume}: no such folder")
        path = args.resume / checkpoint.CHECKPOINT_FILE
        if not path.exists():
            raise CheckpointError(
                f"no checkpoint in {args.resume}; --resume takes the --logdir of a stopped run"
            )
        resume, extra = checkpoint.load(path)
        saved = _saved_settings(extra, path, resume.config.num_models)
        config, run_names = resume.config, list(saved["run_names"])
        if resume.steps_done().min() == config.steps and _finished_results(args.resume):
            raise ConfigError(f"the run in {args.resume} has finished; there is nothing to resume")
        dataset_name, source = saved["dataset"], saved["source"]
        data_dir = args.data_dir or (saved["data_dir"] and pathlib.Path(saved["data_dir"]))
        no_summaries, checkpoint_every = saved["no_summaries"], saved["checkpoint_every"]
        resumes = int(saved["resumes"]) + 1
    else:
        labels = grid_labels(args)
        config = SweepConfig.from_grid(
            grid.grid_values(labels),
            steps=args.steps,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            loss_scale=args.loss_scale,
            seed=args.seed if "seed" not in labels else 0,
            init_scale=args.init_scale,
            schedule=args.schedule,
            chunk_steps=min(DEFAULT_CHUNK_STEPS, args.checkpoint_every),
        )
        run_names = config.run_names(labels)
        dataset_name, source, data_dir = args.dataset, args.source, args.data_dir
        no_summaries, checkpoint_every = args.no_summaries, args.checkpoint_every
        resumes = 0
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    stops.install()  # jax.distributed takes SIGTERM for its preemption notifier
    main_process = parallel.is_main_process()
    if not args.no_compilation_cache:
        try:
            runtime.enable_compilation_cache(data.user_cache_dir() / "jax")
        except OSError as error:
            print(f"warning: no compilation cache ({error.strerror or error})", file=sys.stderr)

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    dataset = data.load_dataset(dataset_name, data_dir=data_dir, source=source, report=say)
    load_s = time.perf_counter() - start
    say(
        f"{dataset.name}: {len(dataset.train_images)} training and {len(dataset.test_images)} "
        f"test images of {dataset.image_shape[0]}x{dataset.image_shape[1]}, "
        f"{dataset.num_classes} classes, from {dataset.origin}"
    )
    check_fits(config, dataset)
    max_models = resume.max_models if resume else args.max_models_per_program
    if not no_summaries:
        # Summaries keep three event files open per model of a program. (Every process
        # plans alike, so that all of them run the same programs.)
        open_files = allow_open_files()
        fits = max(1, (open_files - FILES_IN_RESERVE) // 3)
        if resume is None and (max_models is None or max_models > fits):
            default = plan_sweep(config, dataset).models_per_program
            if (max_models or default) > fits:
                say(f"note: at most {fits} models per program, {open_files} open files allowed")
                max_models = fits
    plan = plan_sweep(config, dataset, max_models_per_program=max_models)
    # Only now, with arguments and data known to be good, does anything get written.
    logdir = None
    if main_process:
        if resume is not None:
            logdir = args.resume
            _check_writable(logdir)
        elif args.logdir:
            logdir = prepare_logdir(args.logdir, overwrite=args.overwrite)
        else:
            logdir = new_logdir()
    extra = {
        "run_names": run_names,
        "dataset": dataset_name,
        "source": source,
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "no_summaries": no_summaries,
        "checkpoint_every": checkpoint_every,
        "resumes": resumes,
    }

    def on_checkpoint(state) -> None:
        if main_process:
            checkpoint.save(logdir / checkpoint.CHECKPOINT_FILE, state, extra)

    # From here until results.json is written, a first signal stops training at the end of
    # a chunk (saving a checkpoint) and never cuts the writing short.
    with stops.deferred():
        with contextlib.ExitStack() as stack:
            # Each context is entered as soon as it exists, so every exit path closes it.
            writer = None
            if not no_summaries and main_process:
                writer = stack.enter_context(
                    summaries.SweepSummaries(
                        logdir,
                        config,
                        run_names,
                        dataset.image_shape,
                        resumed_steps=resume.steps_done() if resume else None,
                        resume_count=resumes,
                        diverged_before=np.flatnonzero(resume.diverged_at) if resume else (),
                    )
                )
            programs = len(plan.tiles)
            progress = stack.enter_context(
                tqdm.tqdm(
                    total=config.steps * programs,
                    initial=resume.tile * config.steps + resume.step if resume else 0,
                    unit="step",
                    desc=f"training {config.num_models} models"
                    + (f" in {programs} slices" if programs > 1 else ""),
                    disable=args.quiet,
                    file=sys.stderr,
                )
            )
            if writer is not None and resume is None:
                first = first_batch(config, len(dataset.train_images))
                writer.write_inputs(dataset.train_images[first])
                writer.write_graph(
                    graph.train_step_graph(
                        dataset.num_features, dataset.num_classes, config.batch_size
                    )
                )

            def on_chunk(report):
                if writer is not None:
                    writer.write_chunk(report)
                progress.update(len(report.steps))
                accuracy = report.test.accuracy[-1]
                if np.isfinite(accuracy).any():
                    progress.set_postfix(test_accuracy=f"{np.nanmax(accuracy):.2%}")

            def should_stop() -> bool:
                # A signal to any process stops them all at the same chunk.
                stop = parallel.any_process(stops.requested is not None)
                if stop:
                    progress.write("stopping: saving a checkpoint (Ctrl-C again quits at once)")
                return stop

            parameter_bytes = (dataset.num_features + 1) * dataset.num_classes * 4
            result = train_sweep(
                dataset,
                config,
                on_chunk=on_chunk,
                # Every process runs the same program, so all compute the histograms.
                histogram_buckets=0 if no_summaries else summaries.HISTOGRAM_BUCKETS,
                max_models_per_program=max_models,
                keep_params=config.num_models * parameter_bytes <= KEEP_PARAMS_BYTES,
                checkpoint_every=checkpoint_every,
                on_checkpoint=on_checkpoint,
                resume=resume,
                should_stop=should_stop,
            )

        # This session's times (a resumed run's checkpoint holds the earlier sessions').
        timing = {
            "load_s": load_s,
            "compile_s": result.compile_s - (resume.compile_s if resume else 0.0),
            "train_s": result.train_s - (resume.train_s if resume else 0.0),
            "total_s": time.perf_counter() - start,
        }
        status = 0
        if result.interrupted:  # this process may have been stopped by another's signal
            status = interrupts.Interrupted(stops.requested or signal.SIGTERM).exit_status
        if not main_process:
            return status
        results.write_json_atomically(
            logdir / results.RESULTS_FILE,
            results.results_document(result, dataset=dataset.name, timing=timing, names=run_names),
        )
        if result.interrupted:
            done = int(result.steps_done.sum())
            print(
                f"interrupted: {done} of {config.steps * config.num_models} model-steps done, "
                f"saved in {logdir / checkpoint.CHECKPOINT_FILE}; go on with: "
                f"python -m jaxsoftmax.train --resume {logdir}",
                file=sys.stderr,
            )
            return status
        diverged = np.flatnonzero(result.diverged_at)
        if diverged.size:
            shown = ", ".join(
                f"{run_names[k]} at step {result.diverged_at[k]}" for k in diverged[:DIVERGED_SHOWN]
            )
            more = (
                f" and {diverged.size - DIVERGED_SHOWN} more"
                if diverged.size > DIVERGED_SHOWN
                else ""
            )
            print(
                f"warning: {diverged.size} of {config.num_models} models diverged: {shown}{more} "
                f"(marked in {results.RESULTS_FILE}; try smaller learning rates)",
                file=sys.stderr,
            )
    if not args.quiet:
        print(results.format_table(result, run_names))
        print(f"time: {results.format_timing(timing)}")
        print(f"results: {logdir / results.RESULTS_FILE}")
        print(f"view in TensorBoard: tensorboard --logdir {logdir}")
    return 0
