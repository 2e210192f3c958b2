"""In-context continual learning on task streams through the shared protocol (``acljax eval``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from acljax.acl.protocol import InContextEvaluator, check_demos
from acljax.acl.trainer import MetaLearner, load_config, load_params
from acljax.data.registry import Preprocessing, channel_statistics, load
from acljax.data.streams import SCENARIOS, Task, TaskStream, per_class_halves, split_stream
from acljax.eval import evaluate
from acljax.eval.protocol import Report, check_test_sets
from acljax.pretrained import PRETRAINED_DIR, model_dir

STREAMS = {  # name -> (data set, tasks, classes per task, scenario)
    "split_mnist_domain": ("mnist", 5, 2, "domain"),
    "split_mnist_class": ("mnist", 5, 2, "class"),
    "split_mnist_class2": ("mnist", 2, 2, "class"),
    "split_fashion_mnist_domain": ("fashion_mnist", 5, 2, "domain"),
}
GLYPH_STREAM = "split_glyphs_domain"  # + N: N 5-way tasks of held-out glyph characters, any N the split holds
GLYPH_WAYS = 5
STREAM_CHOICES = (*STREAMS, f"{GLYPH_STREAM}N", "mnist_then_fashion_mnist", "split:DATASET", "PATH.npz")
CLASS_IL_STREAMS = ("split_mnist_class", "split_mnist_class2", "mnist_then_fashion_mnist")


def splits_data(stream: str) -> bool:
    """Whether ``stream`` is Split-X of a data set (``PATH.npz``, ``split:DATASET``), laid out by
    ``classes_per_task`` and ``scenario``; the named streams fix their own layout."""
    return stream.endswith(".npz") or stream.startswith("split:")


def default_model(stream: str, scenario: str = "domain") -> str:
    """The shipped model meant for ``stream``: the long-stream glyph model for glyph streams, else the
    Split-MNIST model of the stream's scenario (class-IL for class- and task-incremental ones)."""
    if glyph_stream_length(stream) is not None:
        return "glyphs_24task_acl"
    class_il = stream in CLASS_IL_STREAMS or (splits_data(stream) and scenario != "domain")
    return "split_mnist_class_acl" if class_il else "split_mnist_domain_acl"


def evaluation_settings(model: str, stream: str, *, runs: int, shots: int, classes_per_task: int = 2,
                        scenario: str = "domain") -> dict:
    """What decides an evaluation's result: the model (a shipped one by name, a workdir by its absolute path),
    the stream (a ``.npz`` by its absolute path), the settings that apply to it."""
    folder = model_dir(model).resolve()
    settings = {"model": folder.name if folder.parent == PRETRAINED_DIR else str(folder),
                "stream": str(Path(stream).resolve()) if stream.endswith(".npz") else stream}
    if splits_data(stream):
        if scenario not in SCENARIOS:
            raise ValueError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
        settings |= {"scenario": scenario, "classes_per_task": classes_per_task}
    return settings | {"shots": shots, "runs": runs}


def result_name(settings: dict) -> str:
    """MODEL__STREAM__SETTINGS: evaluations that differ in what decides their result get different names."""
    layout = f"{settings['scenario']}_{settings['classes_per_task']}classes_" if "scenario" in settings else ""
    return (f"{Path(settings['model']).name}__{Path(settings['stream']).stem}__{layout}{settings['shots']}shot_"
            f"{settings['runs']}runs")


def glyph_stream_length(name: str) -> int | None:
    """N of a stream named "split_glyphs_domainN" (N >= 1); None for any other name."""
    suffix = name.removeprefix(GLYPH_STREAM)
    return int(suffix) if suffix != name and suffix.isdigit() and int(suffix) >= 1 else None


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


def build_stream(name: str, pre: Preprocessing, *, classes_per_task: int = 2, scenario: str = "domain"):
    """A named stream (see ``STREAM_CHOICES``), or Split-X of a prepared data set (``split:mnist``) or of a
    ``.npz`` file (``classes_per_task`` classes per task, ``scenario``) -> (stream, per-task (mean, std)
    normalisation statistics)."""
    if name in STREAMS:
        dataset, tasks, per_task, scenario = STREAMS[name]
        stream = split_stream(load(dataset, "train", pre), load(dataset, "test", pre), num_tasks=tasks,
                              classes_per_task=per_task, scenario=scenario, source=dataset)
        return stream, [channel_statistics(dataset, pre)] * tasks
    if (length := glyph_stream_length(name)) is not None:
        return glyph_stream(length, pre), [channel_statistics("glyphs", pre)] * length
    if name == "mnist_then_fashion_mnist":
        tasks = [Task(load(d, "train", pre), load(d, "test", pre), np.ones(10, bool), d) for d in
                 ("mnist", "fashion_mnist")]
        stream = TaskStream(tasks, 10, "domain")
        return stream, [channel_statistics(d, pre) for d in ("mnist", "fashion_mnist")]
    if splits_data(name):
        dataset = name.removeprefix("split:")
        train, test = load(dataset, "train", pre), load(dataset, "test", pre)
        num_tasks = len(np.unique(train.y)) // classes_per_task  # classes present (labels may have gaps)
        stream = split_stream(train, test, num_tasks=num_tasks, classes_per_task=classes_per_task, scenario=scenario,
                              source=dataset)
        return stream, [channel_statistics(dataset, pre)] * num_tasks
    raise ValueError(f"stream must be one of {STREAM_CHOICES}, got {name!r}")


def in_context_report(model_dir: str | Path, stream_name: str, *, runs: int = 10, shots: int = 5,
                      classes_per_task: int = 2, scenario: str = "domain", progress: bool = True) -> Report:
    """Accuracy matrices of a meta-trained model over ``runs`` evaluation runs (each draws its own demos)."""
    config = load_config(model_dir)
    pool = config.pools[0]
    pre = Preprocessing(size=pool.size, channels=pool.channels)
    stream, statistics = build_stream(stream_name, pre, classes_per_task=classes_per_task, scenario=scenario)
    check_test_sets(stream.tasks, stream_name)
    check_demos(stream.tasks, shots, stream_name)
    shape = stream.tasks[0].train.x.shape[1:]
    learner = MetaLearner(config, shape)
    params = load_params(model_dir, learner.params)
    evaluator = InContextEvaluator(learner, params, shots=shots, statistics=statistics)
    return evaluate(evaluator, stream.tasks, list(range(runs)), [t.name for t in stream.tasks], progress=progress)

