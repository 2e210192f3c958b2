"""A meta-trained model on task streams through the shared evaluation protocol (``acljax eval``).

:class:`InContextEvaluator` is the protocol's learner for a meta-trained model: ``learn`` reads ``shots`` demos
per class of the task's training images in context (labels as the stream maps them); ``accuracy`` reads the
task's test images as queries against the current state. Every evaluation run ("seed") draws its own demos;
all runs go through the model as one batch. :func:`in_context_report` evaluates a workdir or shipped model
on a named stream.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from acljax.acl.model import load_config, load_params
from acljax.acl.trainer import MetaTrainer
from acljax.checks import is_positive_int
from acljax.data.benchmarks import (
    CLASS_IL_STREAMS,
    build_stream,
    check_character_seed,
    glyph_stream_length,
    splits_data,
)
from acljax.data.preprocess import normalize
from acljax.data.registry import Preprocessing
from acljax.data.streams import Task, check_scenario
from acljax.eval import evaluate
from acljax.eval.protocol import Report, check_test_sets
from acljax.pretrained import PRETRAINED_DIR, model_dir


def check_demos(tasks, shots: int, stream: str) -> None:
    """Every label of every task has ``shots`` training images to draw its demos from: one line naming the
    stream, the task and the label, before any work."""
    for i, task in enumerate(tasks):
        labels, counts = np.unique(task.train.y, return_counts=True)
        where = f"stream {stream}: task {i} ({task.name})"
        if not labels.size:
            raise ValueError(f"{where} has no training images to draw demos from")
        if counts.min() < shots:
            raise ValueError(f"shots={shots} demos per class: {where} has only {counts.min()} training images of "
                             f"label {labels[counts.argmin()]}; give shots <= {counts.min()}")


class InContextEvaluator:
    """Learner protocol adapter. ``trainer``: an :class:`acljax.acl.trainer.MetaTrainer`; ``params`` its
    meta-trained parameters; ``statistics``: per task, the (mean, std) its images are normalised with
    (their data set's channel statistics). Images must already have the model's shape (load them with
    the model's ``Preprocessing``)."""

    runs_all_seeds = True

    def __init__(self, trainer, params, *, shots: int, statistics, query_chunk: int = 512):
        if not is_positive_int(shots):
            raise ValueError(f"InContextEvaluator.shots must be a positive int (demos per class), got {shots!r}")
        self.trainer, self.params, self.shots = trainer, params, shots
        self.statistics, self.query_chunk = list(statistics), query_chunk
        model = trainer.model(params, trainer.rest, train=False)
        self.num_outputs = model.num_classes
        self.image_shape = model.image_shape

        def read_demos(params, rest, images, labels, states):
            model = trainer.model(params, rest, train=False)
            return model(images, labels, states)[1]

        def read_queries(params, rest, images, states):
            model = trainer.model(params, rest, train=False)
            feedback = jnp.full(images.shape[:2], model.num_classes, jnp.int32)
            return model(images, feedback, states, update=False)[0]

        self._read_demos = jax.jit(read_demos)
        self._read_queries = jax.jit(read_queries)

    def reset(self, seed) -> None:
        self.seeds = list(np.atleast_1d(seed))
        self.states = None

    def _check(self, task: Task) -> None:
        if task.train.x.shape[1:] != self.image_shape:
            raise ValueError(f"task images have shape {task.train.x.shape[1:]}, the model reads {self.image_shape}; "
                             "load the data with the model's Preprocessing(size=..., channels=...)")
        if len(task.output_mask) > self.num_outputs:
            raise ValueError(f"the stream has {len(task.output_mask)} outputs, the model only {self.num_outputs}")

    def learn(self, index: int, task: Task) -> None:
        self._check(task)
        demos_x, demos_y = [], []
        for seed in self.seeds:
            rng = np.random.default_rng([seed, index])
            picks = np.concatenate([rng.choice(np.flatnonzero(task.train.y == c), self.shots, replace=False)
                                    for c in np.unique(task.train.y)])
            picks = rng.permutation(picks)  # classes interleaved
            demos_x.append(normalize(task.train.x[picks], *self.statistics[index]))
            demos_y.append(task.train.y[picks])
        self.states = self._read_demos(self.params, self.trainer.rest, np.stack(demos_x), np.stack(demos_y),
                                       self.states)

    def accuracy(self, index: int, task: Task) -> np.ndarray:
        self._check(task)
        mask = np.zeros(self.num_outputs, bool)
        mask[:len(task.output_mask)] = task.output_mask
        correct = np.zeros(len(self.seeds))
        for start in range(0, len(task.test.y), self.query_chunk):
            x = normalize(task.test.x[start:start + self.query_chunk], *self.statistics[index])
            images = np.broadcast_to(x, (len(self.seeds), *x.shape))
            logits = self._read_queries(self.params, self.trainer.rest, images, self.states)  # None: W_0
            predicted = np.argmax(np.where(mask, np.asarray(logits), -np.inf), -1)
            correct += (predicted == task.test.y[start:start + self.query_chunk]).sum(1)
        if not len(task.test.y):
            return np.full(len(self.seeds), np.nan)  # undefined, which the protocol reports as an error
        return correct / len(task.test.y)


def default_model(stream: str, scenario: str = "domain") -> str:
    """The shipped model meant for ``stream``: the long-stream glyph model for glyph streams, else the
    Split-MNIST model of the stream's scenario (class-IL for class- and task-incremental ones)."""
    if glyph_stream_length(stream) is not None:
        return "glyphs_24task_acl"
    class_il = stream in CLASS_IL_STREAMS or (splits_data(stream) and scenario != "domain")
    return "split_mnist_class_acl" if class_il else "split_mnist_domain_acl"


def evaluation_settings(model: str, stream: str, *, runs: int, shots: int, classes_per_task: int = 2,
                        scenario: str = "domain", character_seed: int = 0) -> dict:
    """What decides an evaluation's result: the model (a shipped one by name, a workdir by its absolute path),
    the stream (a ``.npz`` by its absolute path), the settings that apply to it (``character_seed`` where not 0)."""
    check_character_seed(stream, character_seed)
    folder = model_dir(model).resolve()
    settings = {"model": folder.name if folder.parent == PRETRAINED_DIR else str(folder),
                "stream": str(Path(stream).resolve()) if stream.endswith(".npz") else stream}
    if splits_data(stream):
        check_scenario(scenario)
        settings |= {"scenario": scenario, "classes_per_task": classes_per_task}
    if character_seed:
        settings["character_seed"] = character_seed
    return settings | {"shots": shots, "runs": runs}


def result_name(settings: dict) -> str:
    """MODEL__STREAM__SETTINGS: evaluations that differ in what decides their result get different names."""
    layout = f"{settings['scenario']}_{settings['classes_per_task']}classes_" if "scenario" in settings else ""
    characters = f"_characters{settings['character_seed']}" if "character_seed" in settings else ""
    return (f"{Path(settings['model']).name}__{Path(settings['stream']).stem}__{layout}{settings['shots']}shot_"
            f"{settings['runs']}runs{characters}")


def evaluate_into(out: str | Path, model: str | Path, stream: str, *, runs: int = 10, shots: int = 5,
                  classes_per_task: int = 2, scenario: str = "domain", character_seed: int = 0, keep: bool = False,
                  progress: bool = True) -> tuple[Report | None, dict[str, Path]]:
    """``acljax eval``: ``model``'s accuracy matrices on ``stream`` (:func:`in_context_report`) saved into ``out``
    as NAME.json, NAME.md and NAME.png (NAME: :func:`result_name`), refused before the work where NAME.json holds
    another evaluation. ``keep``: an evaluation already there with these settings is kept, not run again (the
    report is then None). ``progress``: say what is evaluated, and show a progress bar. Returns (report, paths)."""
    from acljax.eval import report as reports

    settings = evaluation_settings(str(model), stream, runs=runs, shots=shots, classes_per_task=classes_per_task,
                                   scenario=scenario, character_seed=character_seed)
    out, name = Path(out), result_name(settings)
    reports.claim(out, name, settings)  # never replaces the results of another evaluation
    paths = {suffix: out / f"{name}.{suffix}" for suffix in ("json", "md", "png")}
    if keep and all(p.exists() for p in paths.values()):
        return None, paths
    characters = f", characters {character_seed}" if character_seed else ""
    if progress:
        print(f"Evaluating {model} on {stream}{characters}: in-context, {shots} demos per class, {runs} runs "
              f"(results: {paths['json']})", flush=True)
    result = in_context_report(model, stream, runs=runs, shots=shots, classes_per_task=classes_per_task,
                               scenario=scenario, character_seed=character_seed, progress=progress)
    return result, reports.save(result, out, name, f"{model} on {stream}{characters}, {shots} demos per class",
                                settings, over="runs")


def in_context_report(model_dir: str | Path, stream_name: str, *, runs: int = 10, shots: int = 5,
                      classes_per_task: int = 2, scenario: str = "domain", character_seed: int = 0,
                      progress: bool = True) -> Report:
    """Accuracy matrices of a meta-trained model over ``runs`` evaluation runs (each draws its own demos; a
    glyph stream's characters are drawn once, by ``character_seed``)."""
    check_character_seed(stream_name, character_seed)
    config = load_config(model_dir)
    pool = config.pools[0]
    pre = Preprocessing(size=pool.size, channels=pool.channels)
    stream, statistics = build_stream(stream_name, pre, classes_per_task=classes_per_task, scenario=scenario,
                                      character_seed=character_seed)
    check_test_sets(stream.tasks, stream_name)
    check_demos(stream.tasks, shots, stream_name)
    shape = stream.tasks[0].train.x.shape[1:]
    trainer = MetaTrainer(config, shape)
    params = load_params(model_dir, trainer.params)
    evaluator = InContextEvaluator(trainer, params, shots=shots, statistics=statistics)
    return evaluate(evaluator, stream.tasks, list(range(runs)), [t.name for t in stream.tasks], progress=progress)

