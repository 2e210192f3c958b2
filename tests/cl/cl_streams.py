"""A small synthetic image stream for the sequential learner's tests (imported by tests/cl/test_*.py)."""

import numpy as np

from acljax.data import ImageSet
from acljax.data.streams import split_stream


def blobs(n_per_class=60, classes=6, seed=0):
    """Separable classes that share features, as digits share strokes: every image lights the last
    column; class c also lights row c (plus noise)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.integers(0, 40, (len(y), 6, 6, 1))
    x[:, :, -1, 0] += 200
    for c in range(classes):
        x[y == c, c, :-1, 0] += 120
    return ImageSet(x.astype(np.uint8), y.astype(np.int32))


def stream(scenario):
    return split_stream(blobs(), blobs(20, seed=1), num_tasks=3, classes_per_task=2, scenario=scenario)
