"""N-way K-shot episodes and multi-task sequences for in-context learners, vectorised in numpy.

A sequence concatenates tasks; each task block is laid out as
``[first-shot demos (N, optional)] [demos (N * K)] [queries (Q)]``. Within a task the N classes are
drawn at random (tasks sharing a pool get disjoint classes) and get labels ``0..N-1`` in random
order (plus ``label_offset``, e.g. 2t for class-incremental Split tasks); demos of the classes are
interleaved in random order; first-shot, demo and query examples of a class are distinct images.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from acljax.data.preprocess import normalize
from acljax.data.store import ImageSet

SHOT, DEMO, QUERY = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task of a sequence: ``n_way`` classes from pool ``pool``, ``k_shot`` demos per class,
    ``num_queries`` held-out queries (spread evenly over the classes), and ``first_shot`` extra demos
    (one per class) for the auxiliary 1-shot loss. Labels are ``label_offset + 0..n_way-1``."""

    n_way: int = 5
    k_shot: int = 15
    num_queries: int = 1
    first_shot: bool = False
    label_offset: int = 0
    pool: int = 0

    def __post_init__(self):
        for name in ("n_way", "k_shot", "num_queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TaskSpec.{name} must be a positive int, got {value!r}")
        if self.label_offset < 0 or self.pool < 0:
            raise ValueError(f"TaskSpec.label_offset and pool must be >= 0, got {self.label_offset}, {self.pool}")

    @property
    def examples_per_class(self) -> int:
        return int(self.first_shot) + self.k_shot + math.ceil(self.num_queries / self.n_way)

    @property
    def length(self) -> int:
        return self.n_way * (int(self.first_shot) + self.k_shot) + self.num_queries


class ClassPool:
    """Images grouped by class for fast sampling, normalised with (mean, std) at gather time."""

    def __init__(self, data: ImageSet, mean=0.0, std=1.0, name: str = "data"):
        order = np.argsort(data.y, kind="stable")
        self.images = data.x[order]
        labels = data.y[order]
        self.classes, self.starts, self.counts = np.unique(labels, return_index=True, return_counts=True)
        self.mean, self.std, self.name = mean, std, name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sample_indices(self, rng: np.random.Generator, class_ids: np.ndarray, per_class: int) -> np.ndarray:
        """class_ids (..., N) indices into this pool's classes -> (..., N, per_class) distinct image indices."""
        counts = self.counts[class_ids]
        keys = rng.random((*class_ids.shape, int(self.counts.max())))
        keys[np.arange(keys.shape[-1]) >= counts[..., None]] = np.inf
        picks = np.argpartition(keys, per_class - 1, axis=-1)[..., :per_class] if per_class < keys.shape[-1] else \
            np.argsort(keys, axis=-1)[..., :per_class]
        return self.starts[class_ids][..., None] + picks


class Episodes(NamedTuple):
    """A batch of task sequences, length L = sum of task lengths.

    x: (B, L, H, W, C) float32 normalised images. target: (B, L) int32 true labels.
    feedback: (B, L) int32 the label token fed with each position: the label for demos, ``unknown``
    (= the number of output classes, "N") for queries. task: (L,) which task each position belongs to.
    kind: (L,) SHOT / DEMO / QUERY.
    """

    x: np.ndarray
    target: np.ndarray
    feedback: np.ndarray
    task: np.ndarray
    kind: np.ndarray

    @property
    def is_query(self) -> np.ndarray:
        return self.kind == QUERY


def num_outputs(tasks: list[TaskSpec]) -> int:
    """Size of the label space (and the index of the "unknown" token)."""
    return max(t.label_offset + t.n_way for t in tasks)


def check_tasks(pools: list[ClassPool], tasks: list[TaskSpec]) -> None:
    if not tasks:
        raise ValueError("tasks must hold at least one TaskSpec")
    for t in tasks:
        if t.pool >= len(pools):
            raise ValueError(f"TaskSpec.pool={t.pool} but only {len(pools)} pools were given")
    shapes = {pools[t.pool].images.shape[1:] for t in tasks}
    if len(shapes) > 1:
        raise ValueError(f"pools used together must share one image shape; got {sorted(shapes)} "
                         "(load them with the same Preprocessing(size=..., channels=...))")
    for p, pool in enumerate(pools):
        needed = sum(t.n_way for t in tasks if t.pool == p)
        if needed > pool.num_classes:
            raise ValueError(f"tasks on pool {p} ({pool.name}) need {needed} distinct classes (n_way summed over "
                             f"its tasks), but it has {pool.num_classes}")
        for t in tasks:
            if t.pool == p and pool.counts.min() < t.examples_per_class:
                raise ValueError(f"{pool.name}: n_way={t.n_way}, k_shot={t.k_shot}, num_queries={t.num_queries}"
                                 f"{', first_shot' if t.first_shot else ''} needs {t.examples_per_class} examples "
                                 f"per class; the smallest class has {int(pool.counts.min())}")


def sample_episodes(rng: np.random.Generator, pools: list[ClassPool], tasks: list[TaskSpec],
                    batch_size: int, num_classes: int | None = None) -> Episodes:
    """Sample ``batch_size`` sequences of ``tasks`` (see module docstring). ``num_classes``: the model's
    label space, whose last index + 1 is the queries' "unknown" feedback (default: ``num_outputs(tasks)``)."""
    check_tasks(pools, tasks)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    unknown = num_outputs(tasks) if num_classes is None else num_classes
    if unknown < num_outputs(tasks):
        raise ValueError(f"num_classes={num_classes} is smaller than the tasks' label space ({num_outputs(tasks)})")
    chosen = {p: np.argsort(rng.random((batch_size, pool.num_classes)), axis=1) for p, pool in enumerate(pools)}
    used = dict.fromkeys(range(len(pools)), 0)
    xs, targets, feedbacks, task_ids, kinds = [], [], [], [], []
    rows = np.arange(batch_size)[:, None]
    for i, t in enumerate(tasks):
        pool = pools[t.pool]
        class_ids = chosen[t.pool][:, used[t.pool]:used[t.pool] + t.n_way]  # (B, N), random order = label
        used[t.pool] += t.n_way
        idx = pool.sample_indices(rng, class_ids, t.examples_per_class)  # (B, N, m)
        labels = np.broadcast_to(np.arange(t.n_way), (batch_size, t.n_way))
        parts = []  # (image indices (B, n), labels (B, n), kind)
        if t.first_shot:
            parts.append((idx[:, :, 0], labels, SHOT))
        start = int(t.first_shot)
        demo_idx = idx[:, :, start:start + t.k_shot].reshape(batch_size, -1)
        parts.append((demo_idx, np.repeat(labels, t.k_shot, axis=1), DEMO))
        query_class = (np.arange(t.num_queries) + rng.integers(0, t.n_way, (batch_size, 1))) % t.n_way
        query_slot = start + t.k_shot + np.arange(t.num_queries) // t.n_way
        parts.append((idx[rows, query_class, query_slot], query_class, QUERY))
        for image_idx, label, kind in parts:
            order = np.argsort(rng.random(image_idx.shape), axis=1)  # interleave classes
            xs.append(normalize(pool.images[image_idx[rows, order]], pool.mean, pool.std))
            targets.append(label[rows, order] + t.label_offset)
            feedbacks.append(targets[-1] if kind != QUERY else np.full(label.shape, unknown))
            task_ids.append(np.full(label.shape[1], i))
            kinds.append(np.full(label.shape[1], kind))
    return Episodes(np.concatenate(xs, 1), np.concatenate(targets, 1).astype(np.int32),
                    np.concatenate(feedbacks, 1).astype(np.int32), np.concatenate(task_ids), np.concatenate(kinds))
