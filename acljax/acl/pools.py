"""Class pools for meta-training, meta-validation and meta-testing from a config's data sources, and the check
that every phase's pools can hold the config's tasks, made from the labels alone before any image is loaded."""

from __future__ import annotations

import math
import zipfile
from typing import NamedTuple

import numpy as np

from acljax.acl.config import ACLConfig, PoolConfig
from acljax.data.episodes import ClassPool
from acljax.data.preprocess import add_rotations
from acljax.data.registry import Preprocessing, channel_statistics, load, prepared_info
from acljax.data.store import ImageSet, data_dir, read_split

PHASES = ("train", "validation", "test")
CLASS_SPLIT_SEED = 20231204  # the held-out validation classes are the same in every run


def subset_classes(data: ImageSet, classes: np.ndarray) -> ImageSet:
    """The images of ``classes``, relabelled 0..len(classes)-1 in the order given."""
    keep = np.isin(data.y, classes)
    relabel = np.full(int(data.y.max()) + 1, -1, np.int32)
    relabel[classes] = np.arange(len(classes), dtype=np.int32)
    return ImageSet(data.x[keep], relabel[data.y[keep]])


def phase_source(pool: PoolConfig, phase: str) -> tuple[str, str]:
    """(data set, split) a phase ("train", "validation" or "test") reads."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if phase == "test":
        if pool.test_split is None:
            raise ValueError(f"PoolConfig.test_split is None for {pool.dataset}: there is no meta-test split")
        return pool.dataset, pool.test_split
    if phase == "validation" and pool.validation_split is not None:
        return phase_dataset(pool, phase), pool.validation_split
    return pool.dataset, pool.split


def phase_classes(pool: PoolConfig, phase: str, labels: np.ndarray) -> np.ndarray | None:
    """The classes of the split's ``labels`` the phase uses when ``validation_fraction`` holds some out for
    validation (sorted); None when it uses them all."""
    if phase == "test" or pool.validation_split is not None:
        return None
    classes = np.random.default_rng(CLASS_SPLIT_SEED).permutation(np.unique(labels))
    held_out = int(round(pool.validation_fraction * len(classes)))
    if phase == "validation" and held_out == 0:
        raise ValueError(f"PoolConfig.validation_fraction={pool.validation_fraction} holds out no class of "
                         f"{pool.dataset}[{pool.split}] ({len(classes)} classes); raise it or set validation_split")
    return np.sort(classes[len(classes) - held_out:] if phase == "validation" else classes[:len(classes) - held_out])


def pool_images(pool: PoolConfig, phase: str, *, progress: bool = False) -> ImageSet:
    """The images a phase ("train", "validation" or "test") draws its classes from."""
    dataset, split = phase_source(pool, phase)
    data = load(dataset, split, Preprocessing(size=pool.size, channels=pool.channels), progress=progress)
    if (classes := phase_classes(pool, phase, data.y)) is not None:
        data = subset_classes(data, classes)
    return add_rotations(data) if pool.rotations else data


def phase_dataset(pool: PoolConfig, phase: str) -> str:
    """The data set a phase reads (validation may use another one)."""
    if phase == "validation" and pool.validation_split is not None and pool.validation_dataset is not None:
        return pool.validation_dataset
    return pool.dataset


def build_pools(config: ACLConfig, phase: str, *, progress: bool = False) -> list[ClassPool]:
    """One :class:`ClassPool` per ``config.pools`` entry, normalised with its data set's statistics."""
    pools = []
    for pool in config.pools:
        dataset = phase_dataset(pool, phase)
        mean, std = channel_statistics(dataset, Preprocessing(size=pool.size, channels=pool.channels))
        pools.append(ClassPool(pool_images(pool, phase, progress=progress), mean, std, name=f"{dataset}[{phase}]"))
    return pools


def run_phases(config: ACLConfig) -> tuple[str, ...]:
    """The phases a meta-training run samples: meta-test only when every pool has a test split."""
    return PHASES if all(p.test_split is not None for p in config.pools) else PHASES[:2]


class Census(NamedTuple):
    """What a phase's pool holds, known without its images: examples per class and the preprocessed shape."""

    counts: np.ndarray
    image_shape: tuple[int, int, int]
    name: str  # e.g. "validation pool glyphs[background]"
    split_classes: int  # the split's classes before validation_fraction holds some out (and before rotations)


def census(pool: PoolConfig, phase: str, *, progress: bool = False, read: dict | None = None) -> Census:
    """The classes' sizes and image shape of a phase's pool, from the labels (a ``.npz`` data set is read whole).
    ``read``: labels already read, by (data set, split); what this call reads is added."""
    dataset, split = phase_source(pool, phase)
    read = {} if read is None else read
    if (dataset, split) not in read:
        field = "test_split" if phase == "test" else "split" if split == pool.split else "validation_split"
        read[dataset, split] = _labels(dataset, split, f"PoolConfig.{field}", progress)
    labels, (height, width, channels) = read[dataset, split]
    split_classes = len(np.unique(labels))
    if (classes := phase_classes(pool, phase, labels)) is not None:
        labels = labels[np.isin(labels, classes)]
    counts = np.unique(labels, return_counts=True)[1]
    shape = (pool.size or height, pool.size or width, pool.channels or channels)
    return Census(np.tile(counts, 4) if pool.rotations else counts, shape, f"{phase} pool {dataset}[{split}]",
                  split_classes)


def _labels(dataset: str, split: str, field: str, progress: bool) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A split's labels and stored image shape; of a prepared data set without reading its images. ``field``:
    the config field that names the split."""
    if dataset.endswith(".npz"):
        data = load(dataset, split, progress=progress)
        return data.y, data.x.shape[1:]
    info = prepared_info(dataset, progress=progress)  # prepared on first use when its offline source is here
    if split not in info["splits"]:
        raise ValueError(f"{field}={split!r}: {dataset} has no such split; its splits: {sorted(info['splits'])}")
    try:
        with np.load(data_dir() / dataset / f"{split}.npz") as f:
            labels = f["y"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        labels = read_split(dataset, split).y  # a damaged file: its error says so and how to prepare it again
    return labels, tuple(info["splits"][split]["image_shape"])


def check_pools(config: ACLConfig, *, progress: bool = False) -> tuple[tuple[int, int, int], int]:
    """Before any image is loaded: every pool of every phase the run samples (:func:`run_phases`) holds the
    classes and examples per class its tasks draw, and gives the image shape of the first task's training pool.
    Returns that shape and the number of images all the phases' pools hold. Errors name the field, the value and
    what would work."""
    read: dict = {}
    censuses = {(phase, p): census(pool, phase, progress=progress, read=read) for phase in run_phases(config)
                for p, pool in enumerate(config.pools) if any(t.pool == p for t in config.tasks)}
    shape = censuses["train", config.tasks[0].pool].image_shape
    for (phase, p), found in censuses.items():
        on_pool = [i for i, t in enumerate(config.tasks) if t.pool == p]
        needed = sum(config.tasks[i].n_way for i in on_pool)
        if needed > len(found.counts):
            raise ValueError(_too_few_classes(config, phase, p, found, needed, on_pool))
        for i in on_pool:
            if found.counts.min() < config.tasks[i].examples_per_class:
                t = config.tasks[i]
                raise ValueError(f"tasks.{i} (n_way={t.n_way}, k_shot={t.k_shot}, num_queries={t.num_queries}"
                                 f"{', first_shot' if t.first_shot else ''}) needs {t.examples_per_class} examples "
                                 f"per class, but the smallest class of the {found.name} has "
                                 f"{found.counts.min()}; lower tasks.{i}.k_shot or num_queries, or use a data set "
                                 "with more examples per class")
        if found.image_shape != shape:
            raise ValueError(f"pools.{p}: the {found.name} has images of shape {found.image_shape}, but the model "
                             f"reads {shape} (pools.{config.tasks[0].pool}, train); give every pool the same size "
                             "and channels")
    return shape, sum(int(found.counts.sum()) for found in censuses.values())


def _too_few_classes(config: ACLConfig, phase: str, p: int, found: Census, needed: int, on_pool: list[int]) -> str:
    pool = config.pools[p]
    problem = (f"the {found.name} has {len(found.counts)} classes, but tasks {on_pool} on pool {p} need {needed} "
               f"distinct classes (n_way summed over them)")
    fewer = "; or fewer or smaller tasks (tasks.N.n_way)"
    if phase == "test":
        return f"pools.{p}.test_split={pool.test_split!r}: {problem}; give a larger test_split or None (no meta-test)" \
            + fewer
    if pool.validation_split is not None:
        field = "validation_split" if phase == "validation" else "split"
        return f"pools.{p}.{field}={getattr(pool, field)!r}: {problem}; give a split with more classes" + fewer
    per_class = 4 if pool.rotations else 1  # each class comes in 4 rotations
    low = math.ceil(needed / per_class)  # classes to hold out, and to leave for training
    high = found.split_classes - low
    if low > high:
        return (f"pools.{p}.validation_fraction={pool.validation_fraction}: {problem}; the split's "
                f"{found.split_classes} classes cannot give both training and validation {needed}: set "
                f"pools.{p}.validation_split (validate on another split)" + fewer)
    n = found.split_classes
    fractions = f"{math.ceil(1000 * low / n) / 1000} to {math.floor(1000 * high / n) / 1000}"
    return (f"pools.{p}.validation_fraction={pool.validation_fraction}: {problem}; give validation_fraction from "
            f"{fractions} (holding out {low} to {high} of the {n} classes) or set "
            f"pools.{p}.validation_split" + fewer)
