"""The plateau at chance that meta-training from scratch starts with, against the label feedback's scale.

Every glyph run from scratch first learns to answer each of the 5 labels with probability 1/5 (loss ln 5 = 1.61)
and stays there until it finds in-context learning: 1,250-2,050 steps for the quickstart's MLP model over 3
seeds, and for the paper's Conv-4 model on a GPU often longer than the whole 5,000-step run (2 of 3 seeds;
experiments/conv4_gpu.py). A token is ``Linear([encoder(image), one_hot(label)])``: F image features of
order 1 beside a single label entry, so at initialisation the label barely moves the token. With
``model.feedback_scale`` = sqrt(F) (16 for the quickstart's 256 MLP features, sqrt(128) for Conv-4) both
weigh the same.

For each seed and scale this meta-trains ``--config`` from scratch for ``--steps`` steps and reports the first
logged step whose mean training loss is below 1.5 ("left chance"; never: "-"), the meta-test terms of the best
parameters and the median seconds per step:

    python experiments/feedback_scale.py --record                  # quickstart MLP model, scales 1 and 16
    # Conv-4 at sqrt(128); seeds 1 and 2 never left chance at scale 1 on the GPU (5,000 steps; conv4_gpu.py)
    python experiments/feedback_scale.py --record --config acl_glyphs_conv4 --scales 11.3137 --seeds 1 --steps 1000
    python experiments/feedback_scale.py --record --config acl_glyphs_conv4 --scales 11.3137 --seeds 2 --steps 2000
    python experiments/feedback_scale.py --record --config acl_glyphs_conv4 --scales 11.3137 --seeds 0 --steps 1500
    python experiments/feedback_scale.py --record --config acl_glyphs_conv4 --scales 1 --seeds 1 --steps 1000
    # each run meta-finetuned on Split-MNIST domain-IL for 500 steps; the Conv-4 runs continued to 2,000 steps first
    python experiments/feedback_scale.py --record --scales 1 16 --steps 2000 --split-mnist-steps 500
    python experiments/feedback_scale.py --record --config acl_glyphs_conv4 --scales 11.3137 --steps 2000 \
      --split-mnist-steps 500

The recorded runs: this project's 2-core CPU, 2026-11-24, about 2 min per MLP run; the Conv-4 runs two at a
time (1.0-1.2 s per step each, 0.75 alone), 20-40 min each; Conv-4 on Split-MNIST 2.7 s per step alone, 2.4-4.4
two or three at a time (25-30 min per run).

``--split-mnist-steps N`` meta-finetunes each run on Split-MNIST domain-IL (``acl_split_mnist_domain`` or its
Conv-4 twin, with the run's model, scale and seed, from its best parameters) and reports its ACC on
``split_mnist_domain`` over ``--runs`` evaluation runs, and the mean ± std over seeds.

Workdirs: runs/feedback_scale/<config>_scale<X>_seed<S> (an interrupted run resumes; a finished one is read,
not run again, or continued when --steps asks for more), its Split-MNIST runs beside it as
<that>_at<glyph steps>_split_mnist_domain<N>. Results: runs/feedback_scale/feedback_scale.{json,md} (--record:
experiments/results/); entries of other runs (config, scale, seed, steps) in that file are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from meta_training_seeds import TERMS, stream_accuracy

from acljax import configs
from acljax.acl.trainer import meta_train
from acljax.recording import add_output_arguments, environment, output_dir

LEFT_CHANCE = 1.5  # training loss; 5-way chance is ln 5 = 1.61
WORKDIRS = Path("runs/feedback_scale")
SPLIT_MNIST_STREAM = "split_mnist_domain"
SPLIT_MNIST_CONFIGS = {"acl_glyphs_quickstart": "acl_split_mnist_domain",  # glyph config -> its meta-finetuning
                       "acl_glyphs_conv4": "acl_split_mnist_domain_conv4"}


def run(config_name: str, scale: float, seed: int, steps: int) -> dict:
    """Meta-train (or read, or continue to ``steps``) one run; its row: the step it left chance, meta-test terms (%),
    seconds per step."""
    workdir = WORKDIRS / f"{config_name}_scale{scale:g}_seed{seed}"
    reached = max(r["step"] for r in metrics(workdir)) if (workdir / "results.json").exists() else 0
    if reached > steps:
        raise ValueError(f"{workdir} is at step {reached}, beyond --steps {steps}: give --steps >= {reached}")
    if reached < steps:
        meta_train(configs.override(configs.load(config_name), [
            f"model.feedback_scale={scale}", f"seed={seed}", f"steps={steps}"]), workdir)
    training = [r for r in metrics(workdir) if "sec_per_step" in r]
    test = json.loads((workdir / "results.json").read_text())["test"]
    return {"config": config_name, "feedback_scale": scale, "seed": seed, "steps": training[-1]["step"],
            "left_chance_at": next((r["step"] for r in training if r["loss"] < LEFT_CHANCE), None),
            **{name: 100 * test[key] for name, key in TERMS.items()},
            "sec_per_step": float(np.median([r["sec_per_step"] for r in training])), "workdir": str(workdir)}


def metrics(workdir: Path) -> list[dict]:
    """The rows of a workdir's metrics.jsonl (training and validation)."""
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def split_mnist(glyph_run: dict, steps: int, runs: int) -> dict:
    """Meta-finetune a glyph run on Split-MNIST domain-IL (its model, scale and seed; ``steps`` steps from its best
    parameters) or read the finished run; its ACC (%) on ``split_mnist_domain``, mean and std over ``runs``."""
    workdir = Path(f"{glyph_run['workdir']}_at{glyph_run['steps']}_{SPLIT_MNIST_STREAM}{steps}")
    if not (workdir / "results.json").exists():
        meta_train(configs.override(configs.load(SPLIT_MNIST_CONFIGS[glyph_run["config"]]), [
            f"model.feedback_scale={glyph_run['feedback_scale']}", f"seed={glyph_run['seed']}", f"steps={steps}",
            f"init_from='{glyph_run['workdir']}'"]), workdir)
    accuracy = stream_accuracy(str(workdir), SPLIT_MNIST_STREAM, runs)
    return {"split_mnist_steps": steps, "split_mnist_workdir": str(workdir), "split_mnist_runs": runs,
            "split_mnist_ACC": accuracy["ACC"], "split_mnist_ACC_eval_std": accuracy["ACC eval std"]}


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
        "held-out characters. A run's workdir continued to more steps has a row per length. "
        f"{SPLIT_MNIST_STREAM} ACC: the run meta-finetuned on Split-MNIST domain-IL "
        f"({', '.join(f'`{c}`' for c in SPLIT_MNIST_CONFIGS.values())} with its model, scale and seed, from its best "
        "parameters), mean ± std over evaluation runs.\n" + seeds_table(rows))


def seeds_table(rows: list[dict]) -> str:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="acl_glyphs_quickstart", help="a shipped config, meta-trained from scratch")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 16.0], help="model.feedback_scale values")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="glyph steps (a shorter finished run is continued)")
    parser.add_argument("--split-mnist-steps", type=int, default=0,
                        help="also meta-finetune each run on Split-MNIST domain-IL for this many steps (0: not)")
    parser.add_argument("--runs", type=int, default=10, help="evaluation runs on split_mnist_domain")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    path = out / "feedback_scale.json"
    if args.split_mnist_steps < 0:
        parser.error(f"--split-mnist-steps must be 0 (none) or a positive step count, not {args.split_mnist_steps}")
    if args.split_mnist_steps and args.config not in SPLIT_MNIST_CONFIGS:
        parser.error(f"--split-mnist-steps needs --config {' or '.join(SPLIT_MNIST_CONFIGS)}, not {args.config}")
    runs = [(args.config, scale, seed, args.steps) for scale in args.scales for seed in args.seeds]
    rows = [r for r in (json.loads(path.read_text()) if path.exists() else [])
            if (r["config"], r["feedback_scale"], r["seed"], r["steps"]) not in runs]  # other runs' entries are kept
    command = " ".join(["feedback_scale.py", *(sys.argv[1:] if argv is None else argv)])
    stamp = {"date": time.strftime("%Y-%m-%d"), "command": command, "environment": environment()}  # workdirs here
    for config_name, scale, seed, steps in runs:
        row = run(config_name, scale, seed, steps)
        if args.split_mnist_steps:
            row.update(split_mnist(row, args.split_mnist_steps, args.runs))
        rows.append({**row, **stamp})
        print(f"{config_name}, scale {scale:g}, seed {seed}: left chance at step {rows[-1]['left_chance_at']}",
              flush=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
    rows.sort(key=lambda r: (r["config"], r["feedback_scale"], r["steps"], r["seed"]))
    path.write_text(json.dumps(rows, indent=1) + "\n")
    (out / "feedback_scale.md").write_text(table(rows))
    print(table(rows) + f"\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
