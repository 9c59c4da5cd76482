"""Starting a command-line run: the run to drive (a sweep, or a search), its log
directory, and what the process needs first (the compilation cache, open files)."""

import dataclasses
import pathlib
import sys

from jaxsoftmax.data import load as data
from jaxsoftmax.outputs import logdirs

MAX_OPEN_FILES = 65536
FILES_IN_RESERVE = 256  # for the rest of the process: libraries, data, the compilation cache


def sweep_run(session, config, settings, resume, dataset, say):
    """The run to drive: the one the checkpoint `resume` saved, or a new sweep or search
    (see `search.runs`) of `config` on a plan made here."""
    from jaxsoftmax.outputs.summaries import histogram_buckets
    from jaxsoftmax.search.runs import restore_run, start_run

    buckets = histogram_buckets(config, settings.summaries)
    cap = None
    if settings.summaries:  # three event files open per model of a slice, resumed ones too
        cap = max(1, (allow_open_files() - FILES_IN_RESERVE) // 3)
    options = {"max_models_per_slice": session.max_models_per_slice, "models_cap": cap,
               "layout": settings.layout, "report": say}  # fmt: skip
    if resume is not None:
        return restore_run(dataset, resume, histogram_buckets=buckets, **options)
    halving = settings.halving()
    run = start_run(dataset, config, halving, histogram_buckets=buckets,
                    **options)  # fmt: skip
    if halving is None and run.plan.max_models == cap and run.plan.num_slices > 1:
        say(f"note: at most {cap} models per slice, for as many event files as may be open")
    return run


def logdir(session) -> pathlib.Path:
    """The folder the run writes to: the one it resumes, the one given, or a new one."""
    if session.resume is not None:
        logdirs.check_writable(session.resume)
        logdirs.claim(session.resume)
        return session.resume
    if session.logdir is not None:
        return logdirs.prepare_logdir(session.logdir, overwrite=session.overwrite)
    fresh = logdirs.new_logdir()
    logdirs.claim(fresh)
    return fresh


def enable_compilation_cache(session) -> None:
    from jaxsoftmax.sweep import runtime

    if session.compilation_cache:
        try:
            runtime.enable_compilation_cache(data.user_cache_dir() / "jax")
        except OSError as error:
            print(f"warning: no compilation cache ({error.strerror or error})", file=sys.stderr)


def allow_open_files() -> int:
    """Raises this process's open-file limit to its hard limit; returns the limit now."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limit to raise
        return MAX_OPEN_FILES

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def auto_search(session, dataset, settings, stops):
    """--auto's search (see `auto`), with a progress bar: the config retraining the
    chosen setting on all the training data, and the settings naming it, with what the
    search found (`settings.auto`, for results.json and the last line).

    Raises:
      interrupts.Interrupted: a signal came during the search (which is not saved).
    """
    import tqdm

    from jaxsoftmax.cli import interrupts
    from jaxsoftmax.search import auto
    from jaxsoftmax.sweep import parallel

    if session.logdir is not None and parallel.is_main_process():  # before spending the budget
        logdirs.check_free(session.logdir, overwrite=session.overwrite)
    with tqdm.tqdm(
        unit="step", desc="--auto: searching", disable=session.quiet, file=sys.stderr
    ) as bar:

        def on_chunk(done: int, total: int, best: float) -> None:
            if stops.requested is not None:
                bar.write("stopping: --auto's search is not saved; run --auto again",
                          file=sys.stderr)  # fmt: skip
                raise interrupts.Interrupted(stops.requested)
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix({"validation_accuracy": f"{best:.2%}"})

        choice = auto.search_and_choose(
            dataset, time_budget=session.time_budget, seed=session.seed, on_chunk=on_chunk,
            max_models_per_slice=session.max_models_per_slice, layout=settings.layout,
        )  # fmt: skip
    return choice.retrain, dataclasses.replace(
        settings, run_names=(choice.name,), auto=choice.record
    )


def auto_outcome(found: dict, result) -> str:
    """--auto's last line: the setting chosen, its validation and test accuracy."""
    return (
        f"chosen {found['chosen']}: validation accuracy {found['validation_accuracy']:.2%} "
        f"(search of {found['trials']} settings), test accuracy {result.test_accuracy[-1, 0]:.2%} "
        f"(retrained on all {found['retrain']['training_images']} training images)"
    )


def search_outcome(found: dict, result, names) -> str:
    """A search's last line: the trial chosen on validation, and its test accuracy."""
    k = list(names).index(found["chosen"])
    return (
        f"chosen {found['chosen']}: validation accuracy "
        f"{result.validation_accuracy[-1, k]:.2%} (best of {found['trials']} trials), "
        f"test accuracy {result.test_accuracy[-1, k]:.2%}"
    )
