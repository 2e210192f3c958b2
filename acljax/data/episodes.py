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


class Segment(NamedTuple):
    """Positions of one task in the sequence (Python slices; static under jit)."""

    shots: slice | None  # the first-shot demos (one per class), when the task has them
    demos: slice
    queries: slice


def segments(tasks: list[TaskSpec]) -> list[Segment]:
    """The sequence's layout, one :class:`Segment` per task in order: what :func:`sample_episodes` fills and
    the objective reads."""
    out, start = [], 0
    for t in tasks:
        shots = slice(start, start + t.n_way) if t.first_shot else None
        demo_start = start + (t.n_way if t.first_shot else 0)
        demos = slice(demo_start, demo_start + t.n_way * t.k_shot)
        queries = slice(demos.stop, demos.stop + t.num_queries)
        out.append(Segment(shots, demos, queries))
        start = queries.stop
    return out


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
    layout, shape = segments(tasks), pools[tasks[0].pool].images.shape[1:]
    length = layout[-1].queries.stop
    episodes = Episodes(np.empty((batch_size, length, *shape), np.float32), np.empty((batch_size, length), np.int32),
                        np.empty((batch_size, length), np.int32), np.empty(length, np.int64),
                        np.empty(length, np.int64))
    chosen = {p: np.argsort(rng.random((batch_size, pool.num_classes)), axis=1) for p, pool in enumerate(pools)}
    used = dict.fromkeys(range(len(pools)), 0)
    rows = np.arange(batch_size)[:, None]
    for i, (t, segment) in enumerate(zip(tasks, layout)):
        pool = pools[t.pool]
        class_ids = chosen[t.pool][:, used[t.pool]:used[t.pool] + t.n_way]  # (B, N), random order = label
        used[t.pool] += t.n_way
        idx = pool.sample_indices(rng, class_ids, t.examples_per_class)  # (B, N, m)
        labels = np.broadcast_to(np.arange(t.n_way), (batch_size, t.n_way))
        parts = []  # (positions, image indices (B, n), labels (B, n), kind)
        if t.first_shot:
            parts.append((segment.shots, idx[:, :, 0], labels, SHOT))
        start = int(t.first_shot)
        demo_idx = idx[:, :, start:start + t.k_shot].reshape(batch_size, -1)
        parts.append((segment.demos, demo_idx, np.repeat(labels, t.k_shot, axis=1), DEMO))
        query_class = (np.arange(t.num_queries) + rng.integers(0, t.n_way, (batch_size, 1))) % t.n_way
        query_slot = start + t.k_shot + np.arange(t.num_queries) // t.n_way
        parts.append((segment.queries, idx[rows, query_class, query_slot], query_class, QUERY))
        for positions, image_idx, label, kind in parts:
            order = np.argsort(rng.random(image_idx.shape), axis=1)  # interleave classes
            episodes.x[:, positions] = normalize(pool.images[image_idx[rows, order]], pool.mean, pool.std)
            episodes.target[:, positions] = label[rows, order] + t.label_offset
            episodes.feedback[:, positions] = episodes.target[:, positions] if kind != QUERY else unknown
            episodes.task[positions], episodes.kind[positions] = i, kind
    return episodes
