"""Named task streams: every stream ``acljax eval`` and ``acljax cl`` take, by name, built from prepared data.

A name is one of :data:`STREAMS` (Split-MNIST and Split-Fashion-MNIST layouts), ``split_glyphs_domainN`` (N
5-way tasks of held-out glyph characters), ``mnist_then_fashion_mnist`` (two 10-way tasks, one per data set),
``split:DATASET`` (Split-X of a prepared data set) or a ``PATH.npz`` (Split-X of a file); the last two are cut
into tasks of ``classes_per_task`` classes in a ``scenario``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from acljax.checks import SEED_LIMIT
from acljax.data.registry import Preprocessing, channel_statistics, load, prepared_info
from acljax.data.sources import check_npz_sizes, npz_headers, read_npz
from acljax.data.streams import Task, TaskStream, check_scenario, per_class_halves, split_stream

STREAMS = {  # name -> (data set, tasks, classes per task, scenario)
    "split_mnist_domain": ("mnist", 5, 2, "domain"),
    "split_mnist_class": ("mnist", 5, 2, "class"),
    "split_mnist_class2": ("mnist", 2, 2, "class"),
    "split_fashion_mnist_domain": ("fashion_mnist", 5, 2, "domain"),
}
GLYPH_STREAM = "split_glyphs_domain"  # + N: N 5-way tasks of held-out glyph characters, any N the split holds
GLYPH_WAYS = 5
TWO_DATA_SETS = "mnist_then_fashion_mnist"
STREAM_CHOICES = (*STREAMS, f"{GLYPH_STREAM}N", TWO_DATA_SETS, "split:DATASET", "PATH.npz")
CLASS_IL_STREAMS = ("split_mnist_class", "split_mnist_class2", TWO_DATA_SETS)


class StreamLayout(NamedTuple):
    """How a named stream cuts its data: the data set it reads first (a prepared one's name or a .npz path), its
    number of tasks (None: as many as the data's classes fill), classes per task and scenario."""

    dataset: str
    num_tasks: int | None
    classes_per_task: int
    scenario: str


def splits_data(stream: str) -> bool:
    """Whether ``stream`` is Split-X of a data set (``PATH.npz``, ``split:DATASET``), laid out by
    ``classes_per_task`` and ``scenario``; the named streams fix their own layout."""
    return stream.endswith(".npz") or stream.startswith("split:")


def glyph_stream_length(name: str) -> int | None:
    """N of a stream named "split_glyphs_domainN" (N >= 1); None for any other name."""
    suffix = name.removeprefix(GLYPH_STREAM)
    return int(suffix) if suffix != name and suffix.isdigit() and int(suffix) >= 1 else None


def stream_layout(name: str, classes_per_task: int = 2, scenario: str = "domain") -> StreamLayout:
    """The layout of the stream ``name``; ``classes_per_task`` and ``scenario`` apply to Split-X streams only."""
    if name in STREAMS:
        return StreamLayout(*STREAMS[name])
    if (length := glyph_stream_length(name)) is not None:
        return StreamLayout("glyphs", length, GLYPH_WAYS, "domain")
    if name == TWO_DATA_SETS:
        return StreamLayout("mnist", 2, 10, "domain")
    if splits_data(name):
        check_scenario(scenario)
        return StreamLayout(name.removeprefix("split:"), None, classes_per_task, scenario)
    raise ValueError(f"stream must be one of {STREAM_CHOICES}, got {name!r}")


def glyph_stream(num_tasks: int, pre: Preprocessing, seed: int = 0) -> TaskStream:
    """Split-Omniglot's stand-in: ``num_tasks`` domain-incremental 5-way tasks of held-out glyph characters
    (the "evaluation" alphabets, never seen in meta-training), classes drawn by a fixed permutation
    (``seed``); each character's first half of drawings are its demos, the second half its test images."""
    data = load("glyphs", "evaluation", pre)
    train, test = per_class_halves(data)
    classes = np.random.default_rng(seed).permutation(np.unique(data.y))
    if num_tasks * GLYPH_WAYS > len(classes):
        raise ValueError(f"{GLYPH_STREAM}{num_tasks}: the glyph evaluation split has {len(classes)} characters, "
                         f"enough for at most {len(classes) // GLYPH_WAYS} tasks of {GLYPH_WAYS}")
    return split_stream(train, test, num_tasks=num_tasks, classes_per_task=GLYPH_WAYS, scenario="domain",
                        class_order=classes[:num_tasks * GLYPH_WAYS].tolist())


def check_character_seed(stream: str, character_seed: int) -> None:
    """``character_seed`` draws which held-out characters a ``split_glyphs_domainN`` stream holds (0: the
    streams every recorded result used); other streams have one fixed class order."""
    if not isinstance(character_seed, int) or isinstance(character_seed, bool) or not 0 <= character_seed < SEED_LIMIT:
        raise ValueError(f"character_seed must be an int from 0 to 2**63 - 1, got {character_seed!r}")
    if character_seed and glyph_stream_length(stream) is None:
        raise ValueError(f"character_seed applies to {GLYPH_STREAM}N streams only (they draw their characters), "
                         f"got character_seed={character_seed} with stream {stream!r}")


def build_stream(name: str, pre: Preprocessing, *, classes_per_task: int = 2, scenario: str = "domain",
                 character_seed: int = 0):
    """The stream ``name`` (see :data:`STREAM_CHOICES`) -> (stream, per-task (mean, std) normalisation
    statistics). ``character_seed``: see :func:`check_character_seed`."""
    check_character_seed(name, character_seed)
    layout = stream_layout(name, classes_per_task, scenario)
    if name == TWO_DATA_SETS:
        datasets = ("mnist", "fashion_mnist")
        tasks = [Task(load(d, "train", pre), load(d, "test", pre), np.ones(10, bool), d) for d in datasets]
        return TaskStream(tasks, 10, "domain"), [channel_statistics(d, pre) for d in datasets]
    if glyph_stream_length(name) is not None:
        return (glyph_stream(layout.num_tasks, pre, character_seed),
                [channel_statistics("glyphs", pre)] * layout.num_tasks)
    train, test = load(layout.dataset, "train", pre), load(layout.dataset, "test", pre)
    num_tasks = layout.num_tasks or len(np.unique(train.y)) // layout.classes_per_task  # labels may have gaps
    stream = split_stream(train, test, num_tasks=num_tasks, classes_per_task=layout.classes_per_task,
                          scenario=layout.scenario, source=layout.dataset)
    return stream, [channel_statistics(layout.dataset, pre)] * num_tasks


def stream_geometry(name: str, classes_per_task: int = 2, scenario: str = "domain"
                    ) -> tuple[tuple[int, ...], int, str] | None:
    """(one example's shape, number of outputs, scenario) of a stream, from the data's metadata alone: a data
    set's info.json (a known one not yet prepared is prepared, as loading it would), an .npz's array headers
    (and its labels, for a class- or task-incremental layout). None when an .npz cannot be read so (loading it
    then says why)."""
    layout = stream_layout(name, classes_per_task, scenario)
    if layout.dataset.endswith(".npz"):
        path = Path(layout.dataset)
        try:
            headers = npz_headers(path, ("x", "y", "x_test", "y_test"))
            check_npz_sizes(path, headers)  # a crafted header's shape is no basis for an estimate
            shape = headers["x"][0]
            num_classes = len(np.unique(read_npz(path, ("y",))["y"])) if layout.scenario != "domain" else 0
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        shape = tuple(shape[1:]) + ((1,) if len(shape) == 3 else ())
    else:
        split = prepared_info(layout.dataset)["splits"]["evaluation" if layout.dataset == "glyphs" else "train"]
        shape, num_classes = tuple(split["image_shape"]), split["num_classes"]
    per_task = layout.classes_per_task
    outputs = per_task if layout.scenario == "domain" else (layout.num_tasks or num_classes // per_task) * per_task
    return shape, max(outputs, 1), layout.scenario
