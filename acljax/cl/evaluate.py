"""Gradient-based continual learners on task streams through the shared protocol (``acljax cl``)."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np

from acljax.checks import is_positive_int
from acljax.cl.trainer import SequentialConfig, SequentialLearner, migrate_record
from acljax.data.benchmarks import build_stream, stream_geometry
from acljax.data.registry import Preprocessing
from acljax.data.show import contact_sheet
from acljax.data.store import ImageSet, available_memory, byte_size
from acljax.eval import evaluate
from acljax.eval.protocol import Report
from acljax.workdir import Workdir


def sequential_report(config: SequentialConfig, stream_name: str, *, seeds: int = 5, classes_per_task: int = 2,
                      scenario: str = "domain", progress: bool = True, samples_to: str | Path | None = None,
                      workdir: str | Path | None = None, fit_batch: bool = False) -> Report:
    """Accuracy matrices of ``config``'s method on a stream (any name ``acljax eval`` takes) for seeds
    0..seeds-1, every seed in one program. Inputs are normalised with the first task's statistics (a
    continual learner cannot know later tasks' data). A generative method's samples after each task (first
    seed) go to the PNG ``samples_to``, one row per task. ``workdir``: a checkpoint after each task there; a
    run that finds one (of the same configuration, stream and seeds) goes on after it; a run that fails before
    its first checkpoint leaves no workdir it created. Before any data is loaded, the seeds must fit in memory
    (:func:`check_seeds_fit`); before anything compiles, every task must hold a minibatch: with ``fit_batch``
    the batch size shrinks to the smallest task's training set (said on stderr), else a larger one is refused."""
    if not is_positive_int(seeds):
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    method = config.method
    geometry = stream_geometry(stream_name, classes_per_task, scenario)
    if geometry is not None:
        _check_method_fits(method, stream_name, geometry[2])
        check_seeds_fit(config, geometry[0], geometry[1], seeds)
    _say(progress, f"loading {stream_name}")
    stream, statistics = build_stream(stream_name, Preprocessing(), classes_per_task=classes_per_task,
                                      scenario=scenario)
    shape = stream.tasks[0].train.x.shape[1:]
    if geometry is None:
        _check_method_fits(method, stream_name, stream.scenario)
        check_seeds_fit(config, shape, stream.num_outputs, seeds)
    config = fitted_batch(config, method, stream.tasks, stream_name, fit_batch)
    mean, std = statistics[0]
    learner = SequentialLearner(config, stream.num_outputs, shape, mean, std, progress=progress)
    names = [t.name for t in stream.tasks]
    _say(progress, f"{len(stream.tasks)} tasks; training {seeds} seed(s) together (the first steps compile)")
    if workdir is None:
        report = evaluate(learner, stream.tasks, list(range(seeds)), names, progress=progress)
    else:
        described = {"config": config.to_dict(), "stream": stream_name, "scenario": stream.scenario,
                     "classes_per_task": classes_per_task, "seeds": seeds}
        report = _evaluate_in(Path(workdir), described, learner, stream.tasks, seeds, names, progress)
    if samples_to is not None and learner.samples:
        images = (np.concatenate(learner.samples) * 255).round().astype(np.uint8)
        labels = np.repeat(np.arange(len(learner.samples)), len(learner.samples[0])).astype(np.int32)
        contact_sheet(ImageSet(images, labels), samples_to, rows=len(learner.samples), columns=len(learner.samples[0]),
                      row_labels=[f"after {task.name}" for task in stream.tasks])
    return report


def migrate_settings(settings: dict) -> dict:
    """A run's recorded settings (a result file's, or a workdir's config.json) with the config in today's form
    (:func:`acljax.cl.trainer.migrate_record`)."""
    if isinstance(settings, dict) and isinstance(settings.get("config"), dict):
        return {**settings, "config": migrate_record(settings["config"])}
    return settings


def _say(progress: bool, line: str) -> None:
    if progress:
        print(f"acljax cl: {line}", file=sys.stderr, flush=True)


def _evaluate_in(path: Path, described: dict, learner, tasks, seeds: int, names, progress: bool) -> Report:
    """:func:`acljax.eval.evaluate` with a checkpoint after each task in ``path``; a folder this call created
    is removed when the run fails before its first checkpoint (nothing there to resume)."""
    created = not path.exists()
    run = Workdir(path, max_to_keep=1)
    try:
        with run.exclusive():
            run.check_config(described, migrate=migrate_settings)
            run.write_json("config.json", described)
            return evaluate(learner, tasks, list(range(seeds)), names, progress=progress, workdir=run)
    except BaseException:
        if created and not run.checkpoints.all_steps():
            shutil.rmtree(path, ignore_errors=True)
        raise


def _check_method_fits(method, stream_name: str, scenario: str) -> None:
    if method.uses_task_id and scenario != "task":
        raise ValueError(f"{type(method).__name__} picks its parameters by the task's index at test time, which only "
                         f"task-incremental streams give; {stream_name} is {scenario}-incremental (--scenario "
                         "task, or a routing that infers the task)")


def check_seeds_fit(config: SequentialConfig, input_shape: tuple[int, ...], num_outputs: int, seeds: int) -> None:
    """Refuse ``seeds`` that cannot fit in memory together: every seed trains in one program, each holding at
    least :meth:`SequentialLearner.bytes_per_seed` (from shapes; nothing is allocated) on the device (a GPU's
    free memory, else the host's ``MemAvailable``)."""
    probe = SequentialLearner(config, num_outputs, input_shape, np.zeros(input_shape[-1]), np.ones(input_shape[-1]),
                              progress=False)
    per_seed = probe.bytes_per_seed()
    device = probe.mesh.devices.flat[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        available, where = stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"free on {device.device_kind}"
    else:
        available, where = available_memory(), "available on this machine"
    if seeds * per_seed > available:
        fits = available // per_seed
        raise ValueError(f"seeds={seeds}: every seed trains in one program, which needs at least "
                         f"{byte_size(seeds * per_seed)} ({byte_size(per_seed)} per seed: parameters, gradients, "
                         f"optimiser state, the method's memory and a minibatch), more than the {byte_size(available)} "
                         f"{where}; " + (f"give --seeds {fits} or fewer" if fits else
                                         "not even one seed fits: a smaller model or batch_size"))


def fitted_batch(config: SequentialConfig, method, tasks, stream_name: str, fit: bool) -> SequentialConfig:
    """``config``, with a batch size every task's training set can fill: a larger one is refused, or with ``fit``
    lowered to the smallest task's training set (said on stderr)."""
    sizes = [sum(len(t.train.y) for t in method.training_tasks(tasks[:i + 1])) for i in range(len(tasks))]
    smallest = int(np.argmin(sizes))
    if config.batch_size <= sizes[smallest]:
        return config
    where = f"task {smallest} ({tasks[smallest].name}) of {stream_name} has {sizes[smallest]} training examples"
    if not fit:
        raise ValueError(f"batch_size={config.batch_size}: {where}, fewer than one minibatch; give --set "
                         f"batch_size={sizes[smallest]} or less")
    print(f"acljax cl: batch_size {config.batch_size} -> {sizes[smallest]}: {where} (--set batch_size=N to choose)",
          file=sys.stderr)
    return dataclasses.replace(config, batch_size=sizes[smallest])
