"""Gradient-based continual learners on task streams through the shared protocol (``acljax cl``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from acljax.acl.evaluate import build_stream
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.data.registry import Preprocessing
from acljax.data.show import contact_sheet
from acljax.data.store import ImageSet
from acljax.eval import evaluate
from acljax.eval.protocol import Report
from acljax.workdir import Workdir


def sequential_report(config: SequentialConfig, stream_name: str, *, seeds: int = 5, classes_per_task: int = 2,
                      scenario: str = "domain", progress: bool = True, samples_to: str | Path | None = None,
                      workdir: str | Path | None = None) -> Report:
    """Accuracy matrices of ``config``'s method on a stream (any name ``acljax eval`` takes) for seeds
    0..seeds-1, every seed in one program. Inputs are normalised with the first task's statistics (a
    continual learner cannot know later tasks' data). A generative method's samples after each task (first
    seed) go to the PNG ``samples_to``, one row per task. ``workdir``: a checkpoint after each task there; a
    run that finds one (of the same configuration, stream and seeds) goes on after it."""
    stream, statistics = build_stream(stream_name, Preprocessing(), classes_per_task=classes_per_task,
                                      scenario=scenario)
    method = config.build_method()
    if method.uses_task_id and stream.scenario != "task":
        raise ValueError(f"{type(method).__name__} picks its parameters by the task's index at test time, which only "
                         f"task-incremental streams give; {stream_name} is {stream.scenario}-incremental (--scenario "
                         "task, or a routing that infers the task)")
    mean, std = statistics[0]
    learner = SequentialLearner(config, stream.num_outputs, stream.tasks[0].train.x.shape[1:], mean, std,
                                progress=progress)
    names = [t.name for t in stream.tasks]
    if workdir is None:
        report = evaluate(learner, stream.tasks, list(range(seeds)), names, progress=progress)
    else:
        run = Workdir(workdir, max_to_keep=1)
        with run.exclusive():
            described = json.loads(json.dumps({"config": dataclasses.asdict(config), "stream": stream_name,
                                               "scenario": stream.scenario, "classes_per_task": classes_per_task,
                                               "seeds": seeds}, default=str))
            run.check_config(described)
            run.write_json("config.json", described)
            report = evaluate(learner, stream.tasks, list(range(seeds)), names, progress=progress, workdir=run)
    if samples_to is not None and learner.samples:
        images = (np.concatenate(learner.samples) * 255).round().astype(np.uint8)
        labels = np.repeat(np.arange(len(learner.samples)), len(learner.samples[0])).astype(np.int32)
        contact_sheet(ImageSet(images, labels), samples_to, rows=len(learner.samples), columns=len(learner.samples[0]),
                      row_labels=[f"after {task.name}" for task in stream.tasks])
    return report
