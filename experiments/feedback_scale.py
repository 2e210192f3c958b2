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

The recorded runs: this project's 2-core CPU, 2026-11-24, about 2 min per MLP run; the Conv-4 runs two at a
time (1.0-1.2 s per step each, 0.75 alone), 20-40 min each.

Workdirs: runs/feedback_scale/<config>_scale<X>_seed<S> (an interrupted run resumes; a finished one is read,
not run again). Results: runs/feedback_scale/feedback_scale.{json,md} (--record: experiments/results/); entries
of other runs (config, scale, seed) in that file are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from meta_training_seeds import TERMS

from acljax import configs
from acljax.acl.trainer import meta_train
from acljax.recording import add_output_arguments, environment, output_dir

LEFT_CHANCE = 1.5  # training loss; 5-way chance is ln 5 = 1.61
WORKDIRS = Path("runs/feedback_scale")


def run(config_name: str, scale: float, seed: int, steps: int) -> dict:
    """Meta-train (or read) one run; its row: the step it left chance, meta-test terms (%), seconds per step."""
    workdir = WORKDIRS / f"{config_name}_scale{scale:g}_seed{seed}"
    if not (workdir / "results.json").exists():
        config = configs.override(configs.load(config_name), [f"model.feedback_scale={scale}", f"seed={seed}",
                                                              f"steps={steps}"])
        meta_train(config, workdir)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    training = [r for r in rows if "sec_per_step" in r]
    test = json.loads((workdir / "results.json").read_text())["test"]
    return {"config": config_name, "feedback_scale": scale, "seed": seed, "steps": training[-1]["step"],
            "left_chance_at": next((r["step"] for r in training if r["loss"] < LEFT_CHANCE), None),
            **{name: 100 * test[key] for name, key in TERMS.items()},
            "sec_per_step": float(np.median([r["sec_per_step"] for r in training])), "workdir": str(workdir)}


def table(rows: list[dict]) -> str:
    lines = ["| config | feedback scale | seed | steps | left chance at step | " + " | ".join(TERMS) + " | s/step |",
             "|---|---|---|---|---|" + "---|" * (len(TERMS) + 1)]
    for r in rows:
        left = r["left_chance_at"] if r["left_chance_at"] is not None else "-"
        lines.append(f"| {r['config']} | {r['feedback_scale']:g} | {r['seed']} | {r['steps']} | {left} | "
                     + " | ".join(f"{r[name]:.1f}" for name in TERMS) + f" | {r['sec_per_step']:.2f} |")
    return "\n".join(lines) + (
        f"\n\nLeft chance: the first logged step (every 50) whose mean training loss is below {LEFT_CHANCE} (chance: "
        "ln 5 = 1.61; \"-\": not within the run). Terms: meta-test query accuracy (%) of the best parameters on "
        "held-out characters.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="acl_glyphs_quickstart", help="a shipped config, meta-trained from scratch")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 16.0], help="model.feedback_scale values")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    path = out / "feedback_scale.json"
    runs = [(args.config, scale, seed) for scale in args.scales for seed in args.seeds]
    rows = [r for r in (json.loads(path.read_text()) if path.exists() else [])
            if (r["config"], r["feedback_scale"], r["seed"]) not in runs]  # other runs' entries are kept
    command = " ".join(["feedback_scale.py", *(sys.argv[1:] if argv is None else argv)])
    stamp = {"date": time.strftime("%Y-%m-%d"), "command": command, "environment": environment()}  # workdirs here
    for config_name, scale, seed in runs:
        rows.append({**run(config_name, scale, seed, args.steps), **stamp})
        print(f"{config_name}, scale {scale:g}, seed {seed}: left chance at step {rows[-1]['left_chance_at']}",
              flush=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
    rows.sort(key=lambda r: (r["config"], r["feedback_scale"], r["seed"]))
    path.write_text(json.dumps(rows, indent=1) + "\n")
    (out / "feedback_scale.md").write_text(table(rows))
    print(table(rows) + f"\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
