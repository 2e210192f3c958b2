"""Task streams for continual learning: Split-X, Permuted-X and Rotated-X for any image data set.

Label mappings (Hsu et al. 2018, "Re-evaluating Continual Learning Scenarios"):

- ``task``: labels ``t * C + c`` over ``T * C`` outputs, and each task's ``output_mask`` allows only its own
  C outputs (equivalent to one head per task; the task id is given).
- ``domain``: labels ``c`` over C outputs, no task id.
- ``class``: labels ``t * C + c`` over ``T * C`` outputs, no task id (masks allow every output).

Here C is the number of classes per task (Split) or the data set's classes (Permuted, Rotated).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from acljax.data.store import ImageSet

SCENARIOS = ("task", "domain", "class")


class Task(NamedTuple):
    train: ImageSet
    test: ImageSet
    output_mask: np.ndarray  # (num_outputs,) bool: outputs this task may use
    name: str


class TaskStream(NamedTuple):
    tasks: list[Task]
    num_outputs: int
    scenario: str


def check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")


def _mapping(scenario: str, t: int, num_tasks: int, per_task: int):
    """(label offset, output mask) of task t."""
    outputs = per_task if scenario == "domain" else num_tasks * per_task
    offset = 0 if scenario == "domain" else t * per_task
    mask = np.zeros(outputs, bool)
    if scenario == "task":
        mask[offset:offset + per_task] = True
    else:
        mask[:] = True
    return offset, mask


def per_class_halves(data: ImageSet) -> tuple[ImageSet, ImageSet]:
    """The first half (rounded down) of each class's images, in order, and the rest."""
    order = np.argsort(data.y, kind="stable")
    rank = np.empty(len(data.y), np.int64)  # position of each image among its class's images
    rank[order] = np.arange(len(order)) - np.searchsorted(data.y[order], data.y[order])
    first = rank < np.bincount(data.y)[data.y] // 2
    return ImageSet(data.x[first], data.y[first]), ImageSet(data.x[~first], data.y[~first])


def _check_split_layout(num_tasks: int, classes_per_task: int, order: list, source: str, ordered: bool) -> None:
    """Enough classes for ``num_tasks`` tasks of ``classes_per_task``; the error says what would fit."""
    have = f"the {len(order)} classes " + ("class_order lists" if ordered else f"{source} has")
    if classes_per_task < 1:
        raise ValueError(f"classes_per_task must be >= 1, got {classes_per_task}")
    if classes_per_task > len(order):
        raise ValueError(f"classes_per_task={classes_per_task} is more than {have}; give at most {len(order)}")
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    if num_tasks * classes_per_task > len(order):
        raise ValueError(f"num_tasks={num_tasks} x classes_per_task={classes_per_task} needs "
                         f"{num_tasks * classes_per_task} classes, more than {have}; give 1 to "
                         f"{len(order) // classes_per_task} tasks")


def _check_test_classes(train: ImageSet, test: ImageSet, used: list, source: str) -> None:
    """Every class the tasks use has test images, and the test split has no class the training split lacks:
    otherwise a task would score NaN (no test images) or classes would silently go unscored."""
    train_classes, test_classes = set(np.unique(train.y).tolist()), set(np.unique(test.y).tolist())
    if missing := sorted({int(c) for c in used} - test_classes):
        raise ValueError(f"{source}: the test split has no images of class(es) {missing}, which the stream's tasks "
                         f"use; each task's classes need test images to be scored")
    if unknown := sorted(test_classes - train_classes):
        raise ValueError(f"{source}: the test split has class(es) {unknown} that the training split lacks; they "
                         f"would never be learned nor scored. Give every test class training images")


def split_stream(train: ImageSet, test: ImageSet, *, num_tasks: int = 5, classes_per_task: int = 2,
                 scenario: str = "class", class_order: list[int] | None = None,
                 source: str = "the data set") -> TaskStream:
    """Split-X: task t holds classes ``class_order[t*C:(t+1)*C]`` (default 0..K-1 in order: Split-MNIST's
    0/1, 2/3, ...), labelled by position within the task, mapped per ``scenario``. ``source`` names the data
    (e.g. its file) in errors."""
    check_scenario(scenario)
    classes = np.unique(train.y)
    order = list(classes) if class_order is None else list(class_order)
    _check_split_layout(num_tasks, classes_per_task, order, source, class_order is not None)
    if len(set(order)) != len(order) or not set(order) <= set(classes.tolist()):
        raise ValueError(f"class_order must list distinct classes of the data set, got {class_order}")
    _check_test_classes(train, test, order[:num_tasks * classes_per_task], source)
    tasks = []
    for t in range(num_tasks):
        own = order[t * classes_per_task:(t + 1) * classes_per_task]
        offset, mask = _mapping(scenario, t, num_tasks, classes_per_task)
        position = np.full(int(max(classes.max(), test.y.max())) + 1, -1)
        position[own] = np.arange(classes_per_task)  # a class's label is its position in the task's list
        parts = []
        for data in (train, test):
            keep = np.isin(data.y, own)
            parts.append(ImageSet(data.x[keep], (position[data.y[keep]] + offset).astype(np.int32)))
        tasks.append(Task(parts[0], parts[1], mask, f"classes {[int(c) for c in own]}"))
    return TaskStream(tasks, len(tasks[0].output_mask), scenario)


def _transformed_stream(train, test, transforms, names, scenario) -> TaskStream:
    check_scenario(scenario)
    per_task = int(max(train.y.max(), test.y.max())) + 1
    tasks = []
    for t, (transform, name) in enumerate(zip(transforms, names, strict=True)):
        offset, mask = _mapping(scenario, t, len(transforms), per_task)
        tasks.append(Task(ImageSet(transform(train.x), train.y + offset), ImageSet(transform(test.x), test.y + offset),
                          mask, name))
    return TaskStream(tasks, len(tasks[0].output_mask), scenario)


def permuted_stream(train: ImageSet, test: ImageSet, *, num_tasks: int = 5, seed: int = 0,
                    scenario: str = "domain") -> TaskStream:
    """Permuted-X: task 0 is the data as is, task t > 0 applies a fixed random pixel permutation."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    shape = train.x.shape[1:]
    rng = np.random.default_rng(seed)
    perms = [np.arange(int(np.prod(shape)))] + [rng.permutation(int(np.prod(shape))) for _ in range(num_tasks - 1)]

    def permuter(perm):
        return lambda x: x.reshape(len(x), -1)[:, perm].reshape(x.shape)

    return _transformed_stream(train, test, [permuter(p) for p in perms],
                               ["identity"] + [f"permutation {t}" for t in range(1, num_tasks)], scenario)


def rotated_stream(train: ImageSet, test: ImageSet, *, angles=(0, 45, 90, 135, 180),
                   scenario: str = "domain") -> TaskStream:
    """Rotated-X: task t rotates every image by ``angles[t]`` degrees (bilinear, same size)."""
    if len(angles) < 1:
        raise ValueError("angles must hold at least one angle (degrees)")

    def rotator(angle):
        def rotate(x):
            if angle % 360 == 0:
                return x
            out = ndimage.rotate(x.astype(np.float32), angle, axes=(2, 1), reshape=False, order=1)
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return rotate

    return _transformed_stream(train, test, [rotator(a) for a in angles], [f"rotation {a}" for a in angles],
                               scenario)
