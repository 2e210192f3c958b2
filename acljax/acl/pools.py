"""Class pools for meta-training, meta-validation and meta-testing from a config's data sources."""

from __future__ import annotations

import numpy as np

from acljax.acl.config import ACLConfig, PoolConfig
from acljax.data.episodes import ClassPool
from acljax.data.preprocess import add_rotations
from acljax.data.registry import Preprocessing, channel_statistics, load
from acljax.data.store import ImageSet

PHASES = ("train", "validation", "test")
CLASS_SPLIT_SEED = 20231204  # the held-out validation classes are the same in every run


def subset_classes(data: ImageSet, classes: np.ndarray) -> ImageSet:
    """The images of ``classes``, relabelled 0..len(classes)-1 in the order given."""
    keep = np.isin(data.y, classes)
    relabel = np.full(int(data.y.max()) + 1, -1, np.int32)
    relabel[classes] = np.arange(len(classes), dtype=np.int32)
    return ImageSet(data.x[keep], relabel[data.y[keep]])


def pool_images(pool: PoolConfig, phase: str, *, progress: bool = False) -> ImageSet:
    """The images a phase ("train", "validation" or "test") draws its classes from."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    pre = Preprocessing(size=pool.size, channels=pool.channels)
    if phase == "test":
        if pool.test_split is None:
            raise ValueError(f"PoolConfig.test_split is None for {pool.dataset}: there is no meta-test split")
        data = load(pool.dataset, pool.test_split, pre, progress=progress)
    elif pool.validation_split is not None:
        data = load(pool.dataset, pool.split, pre, progress=progress) if phase == "train" else \
            load(phase_dataset(pool, phase), pool.validation_split, pre, progress=progress)
    else:
        data = load(pool.dataset, pool.split, pre, progress=progress)
        classes = np.random.default_rng(CLASS_SPLIT_SEED).permutation(np.unique(data.y))
        held_out = int(round(pool.validation_fraction * len(classes)))
        if phase == "validation" and held_out == 0:
            raise ValueError(f"PoolConfig.validation_fraction={pool.validation_fraction} holds out no class of "
                             f"{pool.dataset}[{pool.split}] ({len(classes)} classes); raise it or set validation_split")
        data = subset_classes(data, np.sort(classes[len(classes) - held_out:] if phase == "validation"
                                            else classes[:len(classes) - held_out]))
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
