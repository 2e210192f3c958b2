"""One evaluation protocol for every learner, gradient-based or in-context.

A learner sees tasks one at a time; after each, it is tested on every task (future ones included),
and once before any, which gives the accuracy matrix R and the untrained baseline b.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm import tqdm

from acljax.eval.metrics import summarize

if TYPE_CHECKING:
    from acljax.workdir import Workdir


class Learner(Protocol):
    """A learner for the protocol. One that sets ``runs_all_seeds = True`` gets every seed at once in
    ``reset`` (e.g. to ``vmap`` over them) and returns one accuracy per seed."""

    def reset(self, seed: int | list[int]) -> None:
        """Start from scratch (fresh parameters, or an empty context), seeded."""

    def learn(self, index: int, task: Any) -> None:
        """Learn task ``index`` (train on it, or read its demos in context)."""

    def accuracy(self, index: int, task: Any) -> float | np.ndarray:
        """Accuracy on task ``index`` now, in [0, 1] (per seed for a learner that runs all seeds)."""


class ResumableLearner(Learner, Protocol):
    """A learner whose runs can be checkpointed after each task (:func:`acljax.eval.evaluate` with ``workdir``)."""

    def state(self) -> Any:
        """What it has learned so far, as a pytree of arrays (after ``reset``: the tree a restore fills)."""

    def restore(self, state: Any, learned: Sequence[Any]) -> None:
        """Continue from ``state``, saved after learning the tasks ``learned``."""


@dataclasses.dataclass
class Report:
    """Accuracy matrices and baselines of every seed, with per-seed and aggregated metrics."""

    task_names: list[str]
    seeds: list[int]
    matrices: np.ndarray  # (S, T, T)
    baselines: np.ndarray  # (S, T)

    @property
    def per_seed(self) -> list[dict[str, float]]:
        return [summarize(R, b) for R, b in zip(self.matrices, self.baselines, strict=True)]

    @property
    def summary(self) -> dict[str, dict[str, float]]:
        """Each metric's mean and (population) std over seeds."""
        rows = self.per_seed
        return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
                for k in rows[0]}

    def to_json(self) -> dict:
        return {"task_names": self.task_names, "seeds": self.seeds, "matrices": self.matrices.tolist(),
                "baselines": self.baselines.tolist(), "per_seed": self.per_seed, "summary": self.summary,
                "mean_matrix": self.matrices.mean(0).tolist()}


def check_test_sets(tasks: Sequence[Any], stream: str) -> None:
    """Every task has test examples of every label it trains on (else its accuracy is NaN, or blind to a
    class): one line naming the stream, the task and the label, before any work. ``tasks``: with ``train``
    and ``test`` image sets (:class:`acljax.data.streams.Task`)."""
    for i, task in enumerate(tasks):
        missing = np.setdiff1d(task.train.y, task.test.y)
        if missing.size:
            raise ValueError(f"stream {stream}: task {i} ({task.name}) has no test examples of label {missing[0]} "
                             f"(test labels: {np.unique(task.test.y).tolist()}); its accuracy would be NaN: every "
                             "label a task trains on needs test examples")


def _measured(learner: Learner, index: int, task: Any) -> np.ndarray:
    """The learner's accuracy on task ``index``, refused when it is not a number (the protocol never reports NaN)."""
    value = np.asarray(learner.accuracy(index, task))
    if not np.isfinite(value).all():
        raise ValueError(f"task {index} ({getattr(task, 'name', task)}): the accuracy is {value.tolist()}, not a "
                         "number; does the task have test examples of every class?")
    return value


def accuracy_matrix(learner: Learner, tasks: Sequence[Any], seed, workdir: Workdir | None = None,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(R (T, T), b (T,)) for one seed; (R (T, T, S), b (T, S)) when ``seed`` lists S seeds at once.
    With ``workdir`` (a :class:`ResumableLearner`), the learner's state and the rows so far are checkpointed
    after each task, and a run that finds a checkpoint there goes on after the task it holds. ``progress``:
    a bar over the T (T + 1) accuracy measurements."""
    t = len(tasks)
    with tqdm(total=t * (t + 1), desc="accuracy matrix", unit="test", disable=not progress) as bar:
        def row():
            values = []
            for j, task in enumerate(tasks):
                values.append(_measured(learner, j, task))
                bar.update()
            return np.array(values)

        learner.reset(seed)
        baseline = row()
        rows = np.zeros((t, *baseline.shape), baseline.dtype)
        start = 0
        if workdir is not None:
            start, saved = workdir.restore_latest({"learner": learner.state(), "rows": rows})
            if start:
                learner.restore(saved["learner"], tasks[:start])
                rows = np.array(saved["rows"])
                bar.update(start * t)
        for i in range(start, t):
            learner.learn(i, tasks[i])
            rows[i] = row()
            if workdir is not None:
                workdir.save(i + 1, {"learner": learner.state(), "rows": rows})
    return rows, baseline


def evaluate(learner: Learner, tasks: Sequence[Any], seeds: Sequence[int], task_names: Sequence[str] | None = None,
             progress: bool = True, workdir: Workdir | None = None) -> Report:
    """Run the protocol once per seed. ``workdir``: checkpoints after each task, to resume from (a
    :class:`ResumableLearner` that runs all seeds at once)."""
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    names = list(task_names or [f"task {i}" for i in range(len(tasks))])
    if getattr(learner, "runs_all_seeds", False):
        R, b = accuracy_matrix(learner, tasks, list(seeds), workdir, progress)
        return Report(names, list(seeds), np.moveaxis(R, -1, 0), np.moveaxis(b, -1, 0))
    if workdir is not None:
        raise ValueError(f"workdir: checkpoints need a learner that runs every seed at once and can save its state; "
                         f"{type(learner).__name__} is not one")
    results = [accuracy_matrix(learner, tasks, s) for s in tqdm(seeds, desc="seeds", disable=not progress)]
    return Report(names, list(seeds), np.stack([r[0] for r in results]), np.stack([r[1] for r in results]))
