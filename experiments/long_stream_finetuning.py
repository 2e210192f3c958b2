"""The shipped 24-task glyph model meta-finetuned 150 more steps on 24-task sequences, with its dropout (0.1) and
without it, three seeds each, on the 5-, 10- and 20-task glyph streams; and how much a 20-task figure owes to
its characters: every model also reads the 20-task stream of 10 character draws (``--character-seed`` 0-9 of
``acljax eval``; draw 0 is the stream of every recorded result), and is compared with the shipped model draw by
draw (the same characters and demos).

    acljax experiment run long_stream_finetuning      # 6 runs of 150 steps (about 5 min each on 2 cores),
                                                      # then the job: 84 evaluations (about 25 min)
    acljax experiment report long_stream_finetuning   # -> runs/long_stream_finetuning/report/

The job keeps each evaluation it finished (``acljax eval``'s result files, named by model, stream and character
draw); after training a run again, delete the job's folder. Four of the recorded runs (dropout_seed0,
no_dropout_seed0-2) were trained before the experiment was declared, by the ``acljax train`` commands it declares
(their provenance says so), and moved under its root.
"""

import json
from pathlib import Path

import numpy as np

from acljax.acl.in_context import evaluate_into, evaluation_settings, result_name
from acljax.acl.trainer import standard_errors
from acljax.experiment import Experiment, Job, Run
from acljax.results import accuracy_table

SHIPPED = "glyphs_24task_acl"
STEPS = 150
RECIPES = {"with dropout 0.1": ("dropout", ()), "without dropout": ("no_dropout", ("model.dropout_rate=0.0",))}
SEEDS = (0, 1, 2)
STREAMS = ("split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20")
LONGEST = STREAMS[-1]
DRAWS = 10  # character draws of the longest stream
RUNS = 10  # evaluation runs (demo draws) per evaluation
PAPER = "| ACL, Split-Omniglot (paper) | 92.3 | 82.0 | 67.6 |"  # Irie et al., domain-IL ACC (%)

RUN_NAMES = {recipe: [f"{prefix}_seed{seed}" for seed in SEEDS] for recipe, (prefix, _) in RECIPES.items()}


def evaluations(draws: int) -> list[tuple[str, int]]:
    """(stream, character seed): each stream's recorded draw, then the longest stream's other draws."""
    return [(stream, 0) for stream in STREAMS] + [(LONGEST, seed) for seed in range(1, draws)]


def models(root: Path) -> dict[str, str]:
    """{label: shipped model name or workdir}."""
    return {SHIPPED: SHIPPED} | {name: str(root / name) for names in RUN_NAMES.values() for name in names}


def evaluate_models(workdir, draws: int = DRAWS, runs: int = RUNS) -> None:
    """Every model on every evaluation into ``workdir`` (one already there with these settings is kept)."""
    for label, model in models(Path(workdir).parent).items():
        for stream, seed in evaluations(draws):
            result, paths = evaluate_into(workdir, model, stream, runs=runs, shots=5, character_seed=seed, keep=True,
                                          progress=False)
            acc = json.loads(paths["json"].read_text())["summary"]["ACC"]["mean"]
            print(f"{label} on {stream}, characters {seed}: {100 * acc:.2f} ({'kept' if result is None else 'done'})",
                  flush=True)


def accuracies(folder: Path, draws: int, runs: int) -> dict[str, dict[str, dict]]:
    """{label: {"STREAM@SEED": {"ACC": %, "ACC eval std": %}}} from the job's result files."""
    table = {}
    for label, model in models(folder.parent).items():
        for stream, seed in evaluations(draws):
            settings = evaluation_settings(model, stream, runs=runs, shots=5, character_seed=seed)
            acc = json.loads((folder / f"{result_name(settings)}.json").read_text())["summary"]["ACC"]
            table.setdefault(label, {})[f"{stream}@{seed}"] = {"ACC": 100 * acc["mean"],
                                                               "ACC eval std": 100 * acc["std"]}
    return table


def draw_rows(results: dict, draws: int) -> dict[str, tuple[float, float, float | None]]:
    """{label: (mean ACC over the longest stream's draws, mean difference from the shipped model draw by draw, its
    standard error; None for the shipped model)}."""
    def over_draws(label):
        return np.array([results[label][f"{LONGEST}@{s}"]["ACC"] for s in range(draws)])

    rows = {}
    for label in results:
        diff = over_draws(label) - over_draws(SHIPPED)
        error = None if label == SHIPPED else standard_errors({"diff": diff.tolist()})["diff"]
        rows[label] = (float(over_draws(label).mean()), float(diff.mean()), error)
    return rows


def tables(results: dict, draws: int) -> str:
    if draws < 2:
        raise ValueError(f"draws must be at least 2 (a standard error over character draws), got {draws}")
    recorded = {label: {s: acc[f"{s}@0"] for s in STREAMS} for label, acc in results.items()}
    groups = {f"{recipe}, mean ± std over {len(names)} seeds": names for recipe, names in RUN_NAMES.items()}
    first = accuracy_table(recorded, list(STREAMS), groups, fixed_rows=(PAPER,))
    rows = draw_rows(results, draws)
    lines = [f"| model | {LONGEST}, mean over {draws} character draws | difference from {SHIPPED}, same draws |",
             "|---|---|---|"]
    for label, (mean, diff, error) in rows.items():
        lines.append(f"| {label} | {mean:.1f} | " + ("-" if error is None else f"{diff:+.2f} ± {error:.2f}") + " |")
    for group, names in groups.items():
        values = np.array([rows[n][:2] for n in names])
        lines.append(f"| {group} | **{values[:, 0].mean():.1f} ± {values[:, 0].std():.1f}** | "
                     f"**{values[:, 1].mean():+.2f} ± {values[:, 1].std():.2f}** |")
    spread = np.array([results[SHIPPED][f"{LONGEST}@{s}"]["ACC"] for s in range(draws)])
    return (first + f"\n\nACC (%) over every task after the last one, 5 demos per class, on the recorded streams "
            f"(character draw 0); per model mean ± std over {RUNS} evaluation runs (each its own demos); the seeds' "
            f"rows: mean ± std (population) of their means. Each run meta-finetuned {SHIPPED} for {STEPS} steps on "
            "24-task sequences (acl_glyphs_24task: constant lr 3e-4, batch 16), with its dropout or without.\n\n"
            + "\n".join(lines) + f"\n\nThe 20-task stream over {draws} character draws (0-{draws - 1}: "
            f"`--character-seed`), the same {RUNS} demo draws each: per model the mean ACC (%) over the draws and its "
            "difference from the shipped model draw by draw (mean ± standard error over the draws); the seeds' rows: "
            f"mean ± std (population) over the seeds. The shipped model's ACC ranges {spread.min():.1f}-"
            f"{spread.max():.1f} over the draws (std {spread.std():.1f}).\n")


def report(workdirs, out):
    results = accuracies(workdirs["evaluations"], DRAWS, RUNS)
    (out / "long_stream_finetuning.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "long_stream_finetuning.md").write_text(tables(results, DRAWS))
    return [out / "long_stream_finetuning.json", out / "long_stream_finetuning.md"]


EXPERIMENT = Experiment(
    name="long_stream_finetuning",
    runs=tuple(Run(name, "acl_glyphs_24task",
                   (f"init_from='{SHIPPED}'", f"seed={seed}", f"steps={STEPS}", f"validate_every={STEPS}",
                    "log_every=25", "checkpoint_every=75", *RECIPES[recipe][1]))
               for recipe, names in RUN_NAMES.items() for seed, name in zip(SEEDS, names)),
    jobs=(Job("evaluations", evaluate_models, (("draws", DRAWS), ("runs", RUNS))),),
    report=report)
