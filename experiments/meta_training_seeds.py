"""Error bars over meta-training seeds: the quickstart glyph pair (ACL and no ACL) meta-trained with
seeds 0 (the shipped models), 1 and 2, each reported two ways: its meta-test terms (held-out
characters, 16 batches of 16 two-task sequences, from its results.json) and its accuracy on the 5-task
glyph stream (10 evaluation runs, each with its own demos). Mean ± std over meta-training seeds, and
separately the mean over seeds of the std over evaluation runs.

    for seed in 1 2; do
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_acl_seed$seed --set seed=$seed
      acljax train --config acl_glyphs_quickstart --workdir runs/glyphs_2task_no_acl_seed$seed --set seed=$seed --no-acl
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
TERMS = {"A after A": "acc/within_0", "B after A, B": "acc/within_1", "A after A, B": "acc/backward_0_after_1"}
STREAM = "split_glyphs_domain5"


def seed_results(model: str, runs: int) -> dict:
    test = json.loads((model_dir(model) / "results.json").read_text())["test"]
    report = in_context_report(model, STREAM, runs=runs, shots=5, progress=False)
    return {**{name: 100 * test[key] for name, key in TERMS.items()},
            "stream ACC": 100 * report.summary["ACC"]["mean"],
            "stream ACC eval std": 100 * report.summary["ACC"]["std"]}


def table(results: dict) -> str:
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
        "(population std); the last column is the mean over seeds of the std over 10 evaluation runs.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="evaluation runs on the stream")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    results = {label: [{"model": m, **seed_results(m, args.runs)} for m in models] for label, models in MODELS.items()}
    (out / "meta_training_seeds.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "meta_training_seeds.md").write_text(table(results))
    print(table(results) + f"\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
