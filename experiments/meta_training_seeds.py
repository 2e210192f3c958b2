"""Error bars over meta-training seeds.

The quickstart glyph pair (ACL and no ACL) meta-trained with seeds 0 (the shipped models), 1 and 2, each
reported two ways: its meta-test terms (held-out characters, 16 batches of 16 two-task sequences, from its
results.json) and its accuracy on the 5-task glyph stream. The length curriculum (2 -> 4 -> 8 -> 16 -> 24
tasks) continued from each seed's glyph ACL model with the same seed (seed 0: the shipped 8- and 24-task
models), on the 5-, 10- and 20-task glyph streams. The Split-MNIST models, three recipes, each seed
meta-finetuned from its own chain with the same seed: from the 24-task curriculum model (the configs as they
are; seed 0: the shipped models), from the 2-task glyph model (the recipe shipped until 2026-11-24), and the
same with the glyphs' rotations as extra classes (as the paper's Omniglot); on the Split-MNIST streams.
Stream accuracies: --runs evaluation runs (default 10), each with its own demos. Mean ± std over
meta-training seeds, and separately the mean over seeds of the std over evaluation runs.

    for seed in 1 2; do
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_acl_seed$seed --set seed=$seed
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_no_acl_seed$seed --set seed=$seed --no-acl
      previous=runs/glyphs_2task_acl_seed$seed
      for tasks in 4 8 16 24; do  # the length curriculum: 65 min for seeds 1 and 2 side by side on 2 cores
        acljax train --config acl_glyphs_${tasks}task --workdir runs/glyphs_${tasks}task_seed$seed \
          --set seed=$seed --set "init_from='$previous'"
        previous=runs/glyphs_${tasks}task_seed$seed
      done
      for scenario in domain class; do
        acljax train --config acl_split_mnist_$scenario --workdir runs/split_mnist_${scenario}_from24_seed$seed \
          --set seed=$seed --set "init_from='runs/glyphs_24task_seed$seed'"
      done
    done
    for scenario in domain class; do  # the 2-task recipes; seed 0 starts from the shipped glyph model
      acljax train --config acl_split_mnist_$scenario --workdir runs/split_mnist_${scenario}_seed0 \
        --set "init_from='glyphs_2task_acl'"
      acljax train --config acl_split_mnist_$scenario --workdir runs/rot_split_mnist_${scenario}_seed0 \
        --set "init_from='glyphs_2task_acl'" --set pools.0.rotations=True
      for seed in 1 2; do
        acljax train --config acl_split_mnist_$scenario --workdir runs/split_mnist_${scenario}_seed$seed \
          --set seed=$seed --set "init_from='runs/glyphs_2task_acl_seed$seed'"
        acljax train --config acl_split_mnist_$scenario --workdir runs/rot_split_mnist_${scenario}_seed$seed \
          --set seed=$seed --set "init_from='runs/glyphs_2task_acl_seed$seed'" --set pools.0.rotations=True
      done
    done
    python experiments/meta_training_seeds.py [--record]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from acljax.acl.in_context import in_context_report
from acljax.pretrained import model_dir
from acljax.recording import add_output_arguments, output_dir

MODELS = {"ACL": ["glyphs_2task_acl", "runs/glyphs_2task_acl_seed1", "runs/glyphs_2task_acl_seed2"],
          "no ACL": ["glyphs_2task_no_acl", "runs/glyphs_2task_no_acl_seed1", "runs/glyphs_2task_no_acl_seed2"]}
CURRICULUM = {"8-task curriculum": ["glyphs_8task_acl", "runs/glyphs_8task_seed1", "runs/glyphs_8task_seed2"],
              "24-task curriculum": ["glyphs_24task_acl", "runs/glyphs_24task_seed1", "runs/glyphs_24task_seed2"]}
LONG_STREAMS = ("split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20")
SPLIT_MNIST = {  # recipe -> scenario -> the models of seeds 0, 1, 2
    "from the 24-task model (shipped)": {scenario: [f"split_mnist_{scenario}_acl"] + [
        f"runs/split_mnist_{scenario}_from24_seed{seed}" for seed in (1, 2)] for scenario in ("domain", "class")},
    "from the 2-task model": {scenario: [f"runs/split_mnist_{scenario}_seed{seed}" for seed in range(3)]
                              for scenario in ("domain", "class")},
    "from the 2-task model, rotations": {scenario: [f"runs/rot_split_mnist_{scenario}_seed{seed}" for seed in range(3)]
                                         for scenario in ("domain", "class")},
}
SPLIT_MNIST_STREAMS = {"domain-IL (5 tasks)": ("domain", "split_mnist_domain"),
                       "class-IL (5 tasks)": ("class", "split_mnist_class"),
                       "class-IL (2 tasks)": ("class", "split_mnist_class2")}
TERMS = {"A after A": "acc/within_0", "B after A, B": "acc/within_1", "A after A, B": "acc/backward_0_after_1"}
STREAM = "split_glyphs_domain5"


def stream_accuracy(model: str, stream: str, runs: int) -> dict:
    """ACC (%) of ``model`` on ``stream``: mean and std over ``runs`` evaluation runs, 5 demos per class."""
    report = in_context_report(model, stream, runs=runs, shots=5, progress=False)
    return {"model": model, "ACC": 100 * report.summary["ACC"]["mean"],
            "ACC eval std": 100 * report.summary["ACC"]["std"]}


def seed_results(model: str, runs: int) -> dict:
    test = json.loads((model_dir(model) / "results.json").read_text())["test"]
    stream = stream_accuracy(model, STREAM, runs)
    return {**{name: 100 * test[key] for name, key in TERMS.items()},
            "stream ACC": stream["ACC"], "stream ACC eval std": stream["ACC eval std"]}


def stream_table(results: dict, runs: int, caption: str) -> str:
    """results: model recipe -> stream -> one {"ACC", "ACC eval std"} per seed; a row per stream and recipe (the
    first recipe has every stream)."""
    lines = ["| stream | recipe | seeds | ACC per seed | ACC: mean ± std over seeds | std over evaluation runs |",
             "|---|---|---|---|---|---|"]
    for stream in next(iter(results.values())):
        for recipe, per_stream in results.items():
            if stream not in per_stream:  # a recipe run for some of the streams only
                continue
            per_seed = per_stream[stream]
            accs, spread = [r["ACC"] for r in per_seed], np.mean([r["ACC eval std"] for r in per_seed])
            lines.append(f"| {stream} | {recipe} | {len(per_seed)} | {' / '.join(f'{a:.2f}' for a in accs)} | "
                         f"{np.mean(accs):.2f} ± {np.std(accs):.2f} | {spread:.2f} |")
    return "\n".join(lines) + f"\n\n{caption} Per-seed values in seed order 0, 1, 2; population std over seeds; the " \
        f"last column is the mean over seeds of the std over {runs} evaluation runs.\n"


CURRICULUM_CAPTION = (
    "ACC (%) of the length curriculum's models on N-task domain-incremental streams of held-out glyph characters "
    "(5-way, 5 demos per class), each seed's chain starting from the quickstart glyph ACL model of that seed "
    "(seed 0: the shipped `glyphs_8task_acl` and `glyphs_24task_acl`).")
SPLIT_MNIST_CAPTION = (
    "ACC (%) of the ACL models meta-finetuned on Split-MNIST (`acl_split_mnist_domain`, `acl_split_mnist_class`), "
    "each seed starting from the glyph model of the same seed; 5 demos per class, every test image of every task. "
    "Recipes: from the 24-task curriculum model (the configs as they are; seed 0 is the shipped model), from the "
    "2-task quickstart glyph model (`--set \"init_from='glyphs_2task_acl'\"`, the recipe shipped until 2026-11-24) and "
    "the same with rotations (`--set pools.0.rotations=True`: the glyphs' 90/180/270-degree rotations as extra "
    "classes, as the paper's Omniglot).")


def table(results: dict, runs: int) -> str:
    columns = [*TERMS, "stream ACC"]
    lines = ["| model | seeds | " + " | ".join(columns) + " | stream ACC: std over evaluation runs |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for label, per_seed in results.items():
        cells = [f"{np.mean([r[c] for r in per_seed]):.1f} ± {np.std([r[c] for r in per_seed]):.1f}" for c in columns]
        spread = np.mean([r["stream ACC eval std"] for r in per_seed])
        lines.append(f"| {label} | {len(per_seed)} | " + " | ".join(cells) + f" | {spread:.1f} |")
    return "\n".join(lines) + (
        f"\n\nMeta-test terms: query accuracy (%) on held-out characters; stream ACC: `{STREAM}` (5 tasks of "
        "5-way held-out characters, domain-incremental, 5 demos per class). Mean ± std over meta-training seeds "
        f"(population std); the last column is the mean over seeds of the std over {runs} evaluation runs.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="evaluation runs on the stream")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    results = {label: [{"model": m, **seed_results(m, args.runs)} for m in models] for label, models in MODELS.items()}
    curriculum = {recipe: {stream: [stream_accuracy(m, stream, args.runs) for m in models] for stream in LONG_STREAMS}
                  for recipe, models in CURRICULUM.items()}
    split_mnist = {recipe: {label: [stream_accuracy(m, stream, args.runs) for m in models[scenario]]
                            for label, (scenario, stream) in SPLIT_MNIST_STREAMS.items()}
                   for recipe, models in SPLIT_MNIST.items()}
    (out / "meta_training_seeds.json").write_text(
        json.dumps({**results, "curriculum": curriculum, "split_mnist": split_mnist}, indent=1) + "\n")
    text = "\n".join([table(results, args.runs), stream_table(curriculum, args.runs, CURRICULUM_CAPTION),
                      stream_table(split_mnist, args.runs, SPLIT_MNIST_CAPTION)])
    (out / "meta_training_seeds.md").write_text(text)
    print(text + f"\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
