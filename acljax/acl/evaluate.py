"""In-context continual learning on task streams through the shared protocol (``acljax eval``)."""

from __future__ import annotations

from pathlib import Path

from acljax.acl.protocol import InContextEvaluator, check_demos
from acljax.acl.trainer import MetaLearner, load_config, load_params
from acljax.data.benchmarks import CLASS_IL_STREAMS, build_stream, glyph_stream_length, splits_data
from acljax.data.registry import Preprocessing
from acljax.data.streams import check_scenario
from acljax.eval import evaluate
from acljax.eval.protocol import Report, check_test_sets
from acljax.pretrained import PRETRAINED_DIR, model_dir


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
        check_scenario(scenario)
        settings |= {"scenario": scenario, "classes_per_task": classes_per_task}
    return settings | {"shots": shots, "runs": runs}


def result_name(settings: dict) -> str:
    """MODEL__STREAM__SETTINGS: evaluations that differ in what decides their result get different names."""
    layout = f"{settings['scenario']}_{settings['classes_per_task']}classes_" if "scenario" in settings else ""
    return (f"{Path(settings['model']).name}__{Path(settings['stream']).stem}__{layout}{settings['shots']}shot_"
            f"{settings['runs']}runs")


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

