"""The plateau at chance that meta-training from scratch starts with, against the label feedback's scale.

Every glyph run from scratch first learns to answer each of the 5 labels with probability 1/5 (loss ln 5 = 1.61)
and stays there until it finds in-context learning: 1,250-2,050 steps for the quickstart's MLP model over 3
seeds, and for the paper's Conv-4 model on a GPU often longer than the whole 5,000-step run (2 of 3 seeds;
experiments/conv4_gpu.py). A token is ``Linear([encoder(image), one_hot(label)])``: F image features of
order 1 beside a single label entry, so at initialisation the label barely moves the token. With
``model.feedback_scale`` = sqrt(F) (16 for the quickstart's 256 MLP features, sqrt(128) for Conv-4) both
weigh the same.

For each declared run (config, scale, seed, steps; from scratch) the report gives the first logged step whose mean
training loss is below 1.5 ("left chance"; never: "-"), the meta-test terms of the best parameters and the median
seconds per step; and for the runs meta-finetuned on Split-MNIST domain-IL (``acl_split_mnist_domain`` or its
Conv-4 twin, with the run's model, scale and seed, 500 steps from its best parameters) their ACC on
``split_mnist_domain`` over 10 evaluation runs, and the mean ± std over seeds:

    acljax experiment run feedback_scale --dry-run
    acljax experiment run feedback_scale      # the MLP runs: about 2 min each on a 2-core CPU; Conv-4: 20-40 min
    acljax experiment report feedback_scale   # -> runs/feedback_scale/report/

The recorded runs: this project's 2-core CPU, 2026-11-24, about 2 min per MLP run; the Conv-4 runs two at a
time (1.0-1.2 s per step each, 0.75 alone); Conv-4 on Split-MNIST 2.7 s per step alone, 2.4-4.4 two or three at
a time (25-30 min per run). Their workdirs are this graph's, under the same names (the default root). Two Conv-4
runs were first meta-trained for fewer steps (seed 1 to 1,000, seed 0 to 1,500) and then continued in the same
workdir to 2,000; the report shows each workdir as it ends.
"""

import json

import numpy as np

from acljax.experiment import Experiment, Run
from acljax.results import TERMS, median_step_seconds, meta_test_terms, stream_accuracy, training_rows

LEFT_CHANCE = 1.5  # training loss; 5-way chance is ln 5 = 1.61
SPLIT_MNIST_STREAM = "split_mnist_domain"
SPLIT_MNIST_CONFIGS = {"acl_glyphs_quickstart": "acl_split_mnist_domain",  # glyph config -> its meta-finetuning
                       "acl_glyphs_conv4": "acl_split_mnist_domain_conv4"}
SPLIT_MNIST_STEPS = 500
RUNS = 10  # evaluation runs on split_mnist_domain
GLYPH_RUNS = (  # (config, model.feedback_scale, seed, steps, meta-finetuned on Split-MNIST)
    *((config, scale, seed, 2000, True) for config, scale in (("acl_glyphs_quickstart", 1.0),
                                                               ("acl_glyphs_quickstart", 16.0),
                                                               ("acl_glyphs_conv4", 11.3137)) for seed in range(3)),
    ("acl_glyphs_conv4", 1.0, 1, 1000, False))


def glyph_run_name(config: str, scale: float, seed: int) -> str:
    return f"{config}_scale{scale:g}_seed{seed}"


def split_mnist_run_name(config: str, scale: float, seed: int, steps: int) -> str:
    return f"{glyph_run_name(config, scale, seed)}_at{steps}_{SPLIT_MNIST_STREAM}{SPLIT_MNIST_STEPS}"


def declared_runs() -> list[Run]:
    runs = []
    for config, scale, seed, steps, split_mnist in GLYPH_RUNS:
        model = (f"model.feedback_scale={scale}", f"seed={seed}")
        runs.append(Run(glyph_run_name(config, scale, seed), config, (*model, f"steps={steps}")))
        if split_mnist:
            runs.append(Run(split_mnist_run_name(config, scale, seed, steps), SPLIT_MNIST_CONFIGS[config],
                            (*model, f"steps={SPLIT_MNIST_STEPS}"), after=runs[-1].name))
    return runs


def glyph_row(config: str, scale: float, seed: int, workdir) -> dict:
    """A run's row: the step it left chance, meta-test terms (%), seconds per step."""
    training = training_rows(workdir)
    return {"config": config, "feedback_scale": scale, "seed": seed, "steps": training[-1]["step"],
            "left_chance_at": next((r["step"] for r in training if r["loss"] < LEFT_CHANCE), None),
            **meta_test_terms(workdir), "sec_per_step": median_step_seconds(workdir)}


def split_mnist_columns(workdir) -> dict:
    accuracy = stream_accuracy(workdir, SPLIT_MNIST_STREAM, runs=RUNS)
    return {"split_mnist_steps": SPLIT_MNIST_STEPS, "split_mnist_runs": RUNS, "split_mnist_ACC": accuracy["ACC"],
            "split_mnist_ACC_eval_std": accuracy["ACC eval std"]}


def report(workdirs, out):
    rows = []
    for config, scale, seed, steps, split_mnist in GLYPH_RUNS:
        rows.append(glyph_row(config, scale, seed, workdirs[glyph_run_name(config, scale, seed)]))
        if split_mnist:
            rows[-1].update(split_mnist_columns(workdirs[split_mnist_run_name(config, scale, seed, steps)]))
    rows.sort(key=lambda r: (r["config"], r["feedback_scale"], r["steps"], r["seed"]))
    (out / "feedback_scale.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "feedback_scale.md").write_text(table(rows))
    return [out / "feedback_scale.json", out / "feedback_scale.md"]


def table(rows: list[dict]) -> str:
    lines = ["| config | feedback scale | seed | steps | left chance at step | " + " | ".join(TERMS) + " | s/step | "
             f"Split-MNIST steps | {SPLIT_MNIST_STREAM} ACC |", "|---|---|---|---|---|" + "---|" * (len(TERMS) + 3)]
    for r in rows:
        left = r["left_chance_at"] if r["left_chance_at"] is not None else "-"
        downstream = (f"{r['split_mnist_steps']} | {r['split_mnist_ACC']:.2f} ± {r['split_mnist_ACC_eval_std']:.2f}"
                      if "split_mnist_ACC" in r else "- | -")
        lines.append(f"| {r['config']} | {r['feedback_scale']:g} | {r['seed']} | {r['steps']} | {left} | "
                     + " | ".join(f"{r[name]:.1f}" for name in TERMS) + f" | {r['sec_per_step']:.2f} | {downstream} |")
    return "\n".join(lines) + (
        f"\n\nLeft chance: the first logged step (every 50) whose mean training loss is below {LEFT_CHANCE} (chance: "
        "ln 5 = 1.61; \"-\": not within the run). Terms: meta-test query accuracy (%) of the best parameters on "
        "held-out characters. "
        f"{SPLIT_MNIST_STREAM} ACC: the run meta-finetuned on Split-MNIST domain-IL "
        f"({', '.join(f'`{c}`' for c in SPLIT_MNIST_CONFIGS.values())} with its model, scale and seed, from its best "
        "parameters), mean ± std over evaluation runs.\n" + spread_table(rows))


def spread_table(rows: list[dict]) -> str:
    """Mean ± std over seeds of the Split-MNIST ACC of runs alike but for the seed; empty without such runs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "split_mnist_ACC" in r:
            groups.setdefault((r["config"], r["feedback_scale"], r["steps"], r["split_mnist_steps"]), []).append(r)
    if not groups:
        return ""
    lines = ["", "| config | feedback scale | glyph steps + Split-MNIST steps | seeds | ACC per seed | "
             "ACC: mean ± std over seeds | std over evaluation runs |", "|---|---|---|---|---|---|---|"]
    for (config, scale, steps, downstream), group in groups.items():
        accs = [r["split_mnist_ACC"] for r in group]
        lines.append(f"| {config} | {scale:g} | {steps} + {downstream} | {', '.join(str(r['seed']) for r in group)} | "
                     f"{' / '.join(f'{a:.2f}' for a in accs)} | {np.mean(accs):.2f} ± {np.std(accs):.2f} | "
                     f"{np.mean([r['split_mnist_ACC_eval_std'] for r in group]):.2f} |")
    return "\n".join(lines) + (f"\n\n{SPLIT_MNIST_STREAM} ACC (%) over meta-training seeds (population std); the "
                               "last column is the mean over seeds of the std over evaluation runs.\n")


EXPERIMENT = Experiment("feedback_scale", tuple(declared_runs()), report=report)
