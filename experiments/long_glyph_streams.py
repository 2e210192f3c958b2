"""ACL past its meta-training length: N-task domain-incremental streams of held-out glyph characters
(5-way tasks, like the paper's Split-Omniglot) for N = 5, 10, 20 (``--lengths``: any N up to 220), beside the
paper's Split-Omniglot figures (92.3 / 82.0 / 67.6 %, ACL meta-trained on 2-3 tasks).

- In context: the shipped glyph models (meta-trained on 2-task sequences with and without ACL, and the
  length curriculum's 8- and 24-task models; `--models` names others, workdirs included) read 5 demos per
  class of every task in turn, then answer every task's test images.
- Sequential baselines on the same tasks: Hsu et al.'s MLP 784-400-400 (here 1024-400-400) trained on
  each task's demo half (10 drawings per character: twice the in-context demos), Adam 1e-3, batch 16,
  20 epochs per task, with Hsu et al.'s domain-IL strengths; joint training on every task as a bound.

    python experiments/long_glyph_streams.py [--runs 10] [--lengths 5 10 20] [--models glyphs_2task_acl ...]

The recorded table (experiments/results/) came from ``--record --models glyphs_2task_acl glyphs_2task_no_acl
runs/glyphs_4task runs/glyphs_8task runs/glyphs_8task_3000 glyphs_8task_acl runs/glyphs_16task glyphs_24task_acl
runs/glyphs_32task runs/glyphs_2task_d256 runs/glyphs_8task_d256 runs/conv4_d256_seed0/glyphs_2task
runs/conv4_d256_seed0/glyphs_4task runs/conv4_d256_seed0/glyphs_8task runs/conv4_d256_seed0/glyphs_16task
runs/conv4_d256_seed0/glyphs_24task`` (the workdirs: the README's long-task-streams section, the configs'
docstrings and experiments/conv4_gpu.py, the Conv-4 chain meta-trained on a GPU).

Results: runs/long_glyph_streams/long_glyph_streams.{json,md,png} (--out DIR elsewhere; --record:
experiments/results/). Finished (learner, N) entries in that file are kept while their configuration and
run count are unchanged, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from hsu_split_mnist import config_for

from acljax.acl.in_context import in_context_report
from acljax.cl.evaluate import migrate_settings
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.data import channel_statistics
from acljax.data.benchmarks import GLYPH_STREAM, glyph_stream
from acljax.data.registry import Preprocessing
from acljax.eval import evaluate
from acljax.recording import add_output_arguments, output_dir

PAPER = {5: 92.3, 10: 82.0, 20: 67.6}  # Irie et al., Split-Omniglot domain-IL accuracy (%), ACL
MODELS = ("glyphs_2task_acl", "glyphs_2task_no_acl", "glyphs_8task_acl", "glyphs_24task_acl")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lengths", type=int, nargs="+", default=sorted(PAPER),
                        help="tasks per stream (default: the paper's lengths; the glyph split holds up to 220)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="shipped models or workdirs")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    if min(args.lengths) < 1:
        parser.error(f"--lengths must be positive numbers of tasks, got {args.lengths}")
    args.lengths = list(dict.fromkeys(args.lengths))  # each once, in the order given
    out = output_dir(args, __file__)
    path = out / "long_glyph_streams.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    jobs = [(f"in context: {m}", m, None) for m in args.models] + [(b, None, b) for b in args.baselines]
    for label, model, baseline in jobs:
        for n in args.lengths:
            key = f"{label}/{n}"
            setting = {"model": model, "shots": 5} if model else {
                "config": baseline_config(baseline).to_dict()}
            stored = results.get(key, {"runs": None, "setting": None})
            if stored["runs"] == args.runs and migrate_settings(stored["setting"]) == setting:
                print(f"{key}: kept from {path}", flush=True)
                continue
            start = time.time()
            if model:
                report = in_context_report(model, f"{GLYPH_STREAM}{n}", runs=args.runs, shots=5, progress=False)
            else:
                report = baseline_report(baseline_config(baseline), n, args.runs)
            results[key] = {**report.summary, "runs": args.runs, "setting": setting,
                            "seconds": round(time.time() - start, 1)}
            path.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{key}: ACC {100 * results[key]['ACC']['mean']:.1f} in {results[key]['seconds']} s", flush=True)
    (out / "long_glyph_streams.md").write_text(table(results, args.lengths))
    plot(results, args.lengths, out / "long_glyph_streams.png")
    print(table(results, args.lengths) + f"\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
