"""Error bars over meta-training seeds.

The quickstart glyph pair (ACL and no ACL) meta-trained with seeds 0 (the shipped models), 1 and 2, each
reported two ways: its meta-test terms (held-out characters, 16 batches of 16 two-task sequences, from its
results.json) and its accuracy on the 5-task glyph stream. The Split-MNIST models: each seed's glyph ACL
model meta-finetuned with the same seed (seed 0: the shipped models), reported on the Split-MNIST streams,
beside the same chains meta-finetuned with the glyphs' rotations as extra classes (as the paper's Omniglot).
Stream accuracies: --runs evaluation runs (default 10), each with its own demos. Mean ± std over
meta-training seeds, and separately the mean over seeds of the std over evaluation runs.

    for seed in 1 2; do
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_acl_seed$seed --set seed=$seed
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_no_acl_seed$seed --set seed=$seed --no-acl
      for scenario in domain class; do
        acljax train --config acl_split_mnist_$scenario --workdir runs/split_mnist_${scenario}_seed$seed \
          --set seed=$seed --set init_from=runs/glyphs_2task_acl_seed$seed
      done
    done
    for scenario in domain class; do  # the rotations recipe; seed 0 starts from the shipped glyph model
      acljax train --config acl_split_mnist_$scenario --workdir runs/rot_split_mnist_${scenario}_seed0 \
        --set pools.0.rotations=True
      for seed in 1 2; do
        acljax train --config acl_split_mnist_$scenario --workdir runs/rot_split_mnist_${scenario}_seed$seed \
          --set seed=$seed --set init_from=runs/glyphs_2task_acl_seed$seed --set pools.0.rotations=True
      done
    done
    python experiments/meta_training_seeds.py [--record]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from acljax.acl.evaluate import in_context_report
from acljax.pretrained import model_dir
from acljax.recording import add_output_arguments, output_dir

MODELS = {"ACL": ["glyphs_2task_acl", "runs/glyphs_2task_acl_seed1", "runs/glyphs_2task_acl_seed2"],
          "no ACL": ["glyphs_2task_no_acl", "runs/glyphs_2task_no_acl_seed1", "runs/glyphs_2task_no_acl_seed2"]}
SPLIT_MNIST = {  # recipe -> scenario -> the models of seeds 0, 1, 2
    "shipped": {"domain": ["split_mnist_domain_acl", "runs/split_mnist_domain_seed1", "runs/split_mnist_domain_seed2"],
                "class": ["split_mnist_class_acl", "runs/split_mnist_class_seed1", "runs/split_mnist_class_seed2"]},
    "rotations": {scenario: [f"runs/rot_split_mnist_{scenario}_seed{seed}" for seed in range(3)]
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


def split_mnist_table(results: dict, runs: int) -> str:
    lines = ["| Split-MNIST stream | recipe | seeds | ACC per seed | ACC: mean ± std over seeds | "
             "std over evaluation runs |", "|---|---|---|---|---|---|"]
    for label in SPLIT_MNIST_STREAMS:
        for recipe, per_stream in results.items():
            per_seed = per_stream[label]
            accs, spread = [r["ACC"] for r in per_seed], np.mean([r["ACC eval std"] for r in per_seed])
            lines.append(f"| {label} | {recipe} | {len(per_seed)} | {' / '.join(f'{a:.2f}' for a in accs)} | "
                         f"{np.mean(accs):.2f} ± {np.std(accs):.2f} | {spread:.2f} |")
    return "\n".join(lines) + (
        "\n\nACC (%) of the ACL models meta-finetuned on Split-MNIST (`acl_split_mnist_domain`, "
        "`acl_split_mnist_class`), each seed starting from the glyph ACL model of the same seed; 5 demos per class, "
        "every test image of every task. Recipes: shipped (the configs as they are; seed 0 is the shipped model) and "
        "rotations (`--set pools.0.rotations=True`: the glyphs' 90/180/270-degree rotations as extra classes, as the "
        "paper's Omniglot). Per-seed values in seed order 0, 1, 2; population std over seeds; the last column is the "
        f"mean over seeds of the std over {runs} evaluation runs.\n")


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
    split_mnist = {recipe: {label: [stream_accuracy(m, stream, args.runs) for m in models[scenario]]
                            for label, (scenario, stream) in SPLIT_MNIST_STREAMS.items()}
                   for recipe, models in SPLIT_MNIST.items()}
    (out / "meta_training_seeds.json").write_text(json.dumps({**results, "split_mnist": split_mnist}, indent=1) + "\n")
    text = table(results, args.runs) + "\n" + split_mnist_table(split_mnist, args.runs)
    (out / "meta_training_seeds.md").write_text(text)
    print(text + f"\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
