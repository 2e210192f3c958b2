"""ACL past its meta-training length: N-task domain-incremental streams of held-out glyph characters
(5-way tasks, like the paper's Split-Omniglot) for N = 5, 10, 20 (``--lengths``: any N up to 220), beside the
paper's Split-Omniglot figures (92.3 / 82.0 / 67.6 %, ACL meta-trained on 2-3 tasks).

- In context: the shipped glyph models (meta-trained on 2-task sequences with and without ACL, and the
  length curriculum's 8- and 24-task models; `--models` names others, workdirs included) read 5 demos per
  class of every task in turn, then answer every task's test images.
- Sequential baselines on the same tasks: Hsu et al.'s MLP 784-400-400 (here 1024-400-400) trained on
  each task's demo half (10 drawings per character: twice the in-context demos), Adam 1e-3, batch 16,
  20 epochs per task, with Hsu et al.'s domain-IL strengths; joint training on every task as a bound.

Declared: the two curriculum stages of the shipped models' chain that were not shipped (4 and 16 tasks, from
the shipped 2- and 8-task models; the 8-, 24- and 32-task models: the shipped ones, and the long_sequences and
meta_training_seeds experiments), a job training the baselines, and the report, which reads each model in
context (entries of an earlier report in the same folder are kept while the model's best step is unchanged).

    acljax experiment run long_glyph_streams      # 2 runs (about 4 + 9 min on 2 cores) and the baselines
    acljax experiment report long_glyph_streams   # -> runs/long_glyph_streams/report/long_glyph_streams.{json,md,png}

The job's kwargs: ``lengths`` (tasks per stream; the glyph split holds up to 220), ``runs`` (evaluation runs),
``names`` (of BASELINES). Finished baseline entries are kept while their configuration and run count are
unchanged, so an interrupted job resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from acljax.acl.in_context import in_context_report
from acljax.cl.evaluate import migrate_settings
from acljax.cl.hsu2018 import config_for
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.data import channel_statistics
from acljax.data.benchmarks import GLYPH_STREAM, glyph_stream
from acljax.data.registry import Preprocessing
from acljax.eval import evaluate
from acljax.experiment import Experiment, Job, Run
from acljax.pretrained import model_dir

PAPER = {5: 92.3, 10: 82.0, 20: 67.6}  # Irie et al., Split-Omniglot domain-IL accuracy (%), ACL
LENGTHS = sorted(PAPER)
RUNS = 10
SHIPPED = ("glyphs_2task_acl", "glyphs_2task_no_acl", "glyphs_8task_acl", "glyphs_24task_acl")
STAGES = (Run("glyphs_4task", "acl_glyphs_4task"), Run("glyphs_16task", "acl_glyphs_16task"))  # from shipped models
BASELINES = ("Adam", "L2", "EWC", "Online EWC", "SI", "MAS", "LwF", "Offline")  # replay-free, and joint
TRAINING = dict(batch_size=16, epochs=20)  # a task has 50 training images


def baseline_config(name: str) -> SequentialConfig:
    return dataclasses.replace(config_for(name, "domain"), **TRAINING)


def baseline_report(config: SequentialConfig, length: int, runs: int):
    pre = Preprocessing(size=32, channels=1)
    stream = glyph_stream(length, pre)
    mean, std = channel_statistics("glyphs", pre)
    learner = SequentialLearner(config, stream.num_outputs, (32, 32, 1), mean[0], std[0], progress=False)
    return evaluate(learner, stream.tasks, list(range(runs)), [t.name for t in stream.tasks], progress=False)


def entries(path: Path, learners: list[tuple[str, dict, Callable]], lengths, runs: int) -> dict:
    """{"LEARNER/N": summary} of each (label, setting, evaluate(n) -> report) on each length into ``path``; an entry
    there with the same setting and run count is kept, not evaluated again."""
    results = json.loads(path.read_text()) if path.exists() else {}
    for label, setting, report_for in learners:
        for n in lengths:
            key = f"{label}/{n}"
            stored = results.get(key, {"runs": None, "setting": None})
            if stored["runs"] == runs and migrate_settings(stored["setting"]) == setting:
                print(f"{key}: kept from {path}", flush=True)
                continue
            start = time.time()
            results[key] = {**report_for(n).summary, "runs": runs, "setting": setting,
                            "seconds": round(time.time() - start, 1)}
            path.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{key}: ACC {100 * results[key]['ACC']['mean']:.1f} in {results[key]['seconds']} s", flush=True)
    return results


def baselines(workdir: Path, lengths: list[int] = LENGTHS, runs: int = RUNS, names: list[str] = BASELINES) -> None:
    """Each baseline of ``names`` trained on each stream of ``lengths`` tasks, ``runs`` seeds, into
    ``workdir/baselines.json``."""
    check_lengths(lengths)
    if unknown := [n for n in names if n not in BASELINES]:
        raise ValueError(f"names: {unknown} are not among {list(BASELINES)}")
    entries(Path(workdir) / "baselines.json", [
        (name, {"config": baseline_config(name).to_dict()},
         lambda n, name=name: baseline_report(baseline_config(name), n, runs)) for name in names], lengths, runs)


def check_lengths(lengths) -> None:
    if not lengths or min(lengths) < 1 or len(set(lengths)) != len(lengths):
        raise ValueError(f"lengths must be distinct positive numbers of tasks, got {lengths}")


def in_context(models: dict[str, str | Path], path: Path, lengths, runs: int) -> dict:
    """Each model ({label: shipped name or workdir}) reading each stream in context, 5 demos per class."""
    def setting(label, model):
        best = json.loads((model_dir(model) / "best.json").read_text())
        return {"model": label, "shots": 5, "best_step": best["step"]}

    return entries(path, [(f"in context: {label}", setting(label, model),
                           lambda n, model=model: in_context_report(str(model), f"{GLYPH_STREAM}{n}", runs=runs,
                                                                    shots=5, progress=False))
                          for label, model in models.items()], lengths, runs)


def report(workdirs, out):
    lengths = LENGTHS
    models = {name: name for name in SHIPPED} | {run.name: workdirs[run.name] for run in STAGES}
    results = in_context(models, out / "in_context.json", lengths, RUNS)
    results |= json.loads((workdirs["baselines"] / "baselines.json").read_text())
    (out / "long_glyph_streams.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "long_glyph_streams.md").write_text(table(results, lengths))
    plot(results, lengths, out / "long_glyph_streams.png")
    return [out / "long_glyph_streams.json", out / "long_glyph_streams.md", out / "long_glyph_streams.png"]


def learners(results: dict) -> list[str]:
    """The learners of the results' keys ("LEARNER/N"), in-context models first, each group in recorded order."""
    names = dict.fromkeys(key.rsplit("/", 1)[0] for key in results)
    return sorted(names, key=lambda name: not name.startswith("in context"))


def table(results: dict, lengths) -> str:
    lines = ["| learner | " + " | ".join(f"{n} tasks" for n in lengths) + " |", "|---|" + "---|" * len(lengths)]
    lines.append("| ACL, Split-Omniglot (paper) | " + " | ".join(f"{PAPER[n]:.1f}" if n in PAPER else "-"
                                                                  for n in lengths) + " |")
    for learner in learners(results):
        cells = [results.get(f"{learner}/{n}") for n in lengths]
        lines.append(f"| {learner} | " + " | ".join(
            f"{100 * c['ACC']['mean']:.1f} ± {100 * c['ACC']['std']:.1f}" if c else "-" for c in cells) + " |")
    return "\n".join(lines) + ("\n\nACC (%): accuracy over every task after the last one, mean ± std over "
                               "evaluation runs (in context: the demos drawn; baselines: the seed).\n")


def plot(results: dict, lengths, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    paper = [n for n in lengths if n in PAPER]
    ax.plot(paper, [PAPER[n] for n in paper], "k--", marker="s", label="ACL, Split-Omniglot (paper)")
    colors = {True: iter(plt.cm.tab20.colors), False: iter(plt.cm.tab10.colors)}  # a colour per learner of a group
    for learner in learners(results):
        points = [(n, results[f"{learner}/{n}"]["ACC"]) for n in lengths if f"{learner}/{n}" in results]
        in_context = learner.startswith("in context")  # solid; sequential baselines dotted
        ax.errorbar([n for n, _ in points], [100 * a["mean"] for _, a in points],
                    yerr=[100 * a["std"] for _, a in points], marker="o" if in_context else "x", capsize=3,
                    linestyle="-" if in_context else ":", color=next(colors[in_context]), label=learner)
    ax.set(xlabel="tasks in the stream (5-way each)", ylabel="ACC (%)", xticks=list(lengths), ylim=(0, 100),
           title="Held-out glyph characters, domain-incremental")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


EXPERIMENT = Experiment("long_glyph_streams", runs=STAGES, jobs=(Job("baselines", baselines),), report=report)
