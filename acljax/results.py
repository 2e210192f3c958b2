"""What experiment reports are built from: a model's meta-test terms and logged step time, its accuracy on a
stream read in context, and the tables of these over models and meta-training seeds. A model is a workdir or a
shipped model's name (:func:`acljax.pretrained.model_dir`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from acljax.pretrained import model_dir

TERMS = {"A after A": "acc/within_0", "B after A, B": "acc/within_1", "A after A, B": "acc/backward_0_after_1"}
SPLIT_MNIST_STREAMS = {"domain-IL (5 tasks)": ("domain", "split_mnist_domain"),  # label -> (scenario, stream)
                       "class-IL (5 tasks)": ("class", "split_mnist_class"),
                       "class-IL (2 tasks)": ("class", "split_mnist_class2")}


def meta_test_terms(model: str | Path) -> dict[str, float]:
    """The 2-task meta-test terms (%) of ``model``'s best parameters, from its results.json: {TERMS label: %}."""
    test = json.loads((model_dir(model) / "results.json").read_text())["test"]
    return {name: 100 * test[key] for name, key in TERMS.items()}


def training_rows(model: str | Path) -> list[dict]:
    """The training rows of ``model``'s metrics.jsonl (those with a step time; validation rows left out)."""
    lines = (model_dir(model) / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "sec_per_step" in row]


def median_step_seconds(model: str | Path) -> float:
    return float(np.median([row["sec_per_step"] for row in training_rows(model)]))


def stream_accuracy(model: str | Path, stream: str, *, runs: int = 10, shots: int = 5,
                    character_seed: int = 0) -> dict[str, float]:
    """ACC (%) of ``model`` reading ``stream`` in context, ``shots`` demos per class: {"ACC": mean, "ACC eval std":
    std} over ``runs`` evaluation runs (each draws its own demos; ``character_seed``: a glyph stream's characters)."""
    from acljax.acl.in_context import in_context_report

    acc = in_context_report(str(model), stream, runs=runs, shots=shots, character_seed=character_seed,
                            progress=False).summary["ACC"]
    return {"ACC": 100 * acc["mean"], "ACC eval std": 100 * acc["std"]}


def accuracy_table(accuracies: dict, streams: list[str], groups: dict[str, list[str]], *,
                   fixed_rows: tuple[str, ...] = ()) -> str:
    """Markdown from ``{model label: {stream: stream_accuracy(...)}}``: ``fixed_rows`` (preformatted), each model's
    ACC (mean ± std over evaluation runs), and per group of seeds (``{row label: [model labels]}``) the mean ±
    population std of their means."""
    lines = ["| model | " + " | ".join(streams) + " |", "|---|" + "---|" * len(streams), *fixed_rows]
    for label, acc in accuracies.items():
        lines.append(f"| {label} | " + " | ".join(f"{acc[s]['ACC']:.1f} ± {acc[s]['ACC eval std']:.1f}"
                                                  for s in streams) + " |")
    for row, members in groups.items():
        means = [np.array([accuracies[m][s]["ACC"] for m in members]) for s in streams]
        lines.append(f"| {row} | " + " | ".join(f"**{v.mean():.1f} ± {v.std():.1f}**" for v in means) + " |")
    return "\n".join(lines)


def seeds_table(results: dict, runs: int, caption: str) -> str:
    """Markdown from ``{recipe: {stream: [stream_accuracy(...) per seed]}}``: a row per stream and recipe (streams
    in the first recipe's order; a recipe without a stream has no row for it) with each seed's ACC, their mean ±
    population std, and the mean over seeds of the std over ``runs`` evaluation runs."""
    lines = ["| stream | recipe | seeds | ACC per seed | ACC: mean ± std over seeds | std over evaluation runs |",
             "|---|---|---|---|---|---|"]
    for stream in next(iter(results.values())):
        for recipe, per_stream in results.items():
            if stream not in per_stream:
                continue
            per_seed = per_stream[stream]
            accs, spread = [r["ACC"] for r in per_seed], np.mean([r["ACC eval std"] for r in per_seed])
            lines.append(f"| {stream} | {recipe} | {len(per_seed)} | {' / '.join(f'{a:.2f}' for a in accs)} | "
                         f"{np.mean(accs):.2f} ± {np.std(accs):.2f} | {spread:.2f} |")
    return "\n".join(lines) + f"\n\n{caption} Per-seed values in seed order 0, 1, 2; population std over seeds; the " \
        f"last column is the mean over seeds of the std over {runs} evaluation runs.\n"
