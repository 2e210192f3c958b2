"""The paper's Conv-4 model, meta-trained on a GPU: every run from scratch, and Split-MNIST with error bars.

The runs (2026-11-24, one NVIDIA H100 through this project's device tool, jax/jaxlib 0.11.2, flax 0.12.10,
the Pallas SRWM kernels (`impl="auto"`); 3 or 4 runs sharing the GPU, 16 CPU cores; about 28 min of GPU time
for everything): the 2-task glyph quickstart task with a Conv-4 encoder, 5000 steps, in two sizes:
the quickstart's SRWM sizes (D = 128, 8 heads, feed-forward 256; `acl_glyphs_quickstart --set
model.encoder='conv4'`) and the paper's (`acl_glyphs_conv4`: D = 256, 16 heads, feed-forward 512), seeds
0, 1, 2, and the paper's sizes at learning rate 3e-4 for seeds 1 and 2. Each was meta-finetuned on
Split-MNIST with the same model and `init_from` that run (`acl_split_mnist_{domain,class}_conv4`; for
D = 128, `acl_split_mnist_{domain,class} --set model.encoder='conv4'`). The paper-sized seed 0 also went
through the length curriculum (2 -> 4 -> 8 -> 16 -> 24 tasks; `acl_glyphs_conv4`'s docstring) and, on this
project's 2-core CPU (about 52 min), class-IL Split-MNIST from its 24-task model:

    for seed in 0 1 2; do
      acljax train --config acl_glyphs_conv4 --workdir runs/conv4_d256_seed$seed/glyphs_2task --seed $seed
      for scenario in domain class; do
        acljax train --config acl_split_mnist_${scenario}_conv4 --seed $seed \\
          --workdir runs/conv4_d256_seed$seed/split_mnist_$scenario \\
          --set "init_from='runs/conv4_d256_seed$seed/glyphs_2task'"
      done
    done
    # the same with --set learning_rate=3e-4 for the glyph runs (runs/conv4_d256_lr3e-4_seed1, _seed2), and
    # with acl_glyphs_quickstart --set model.encoder='conv4' (runs/conv4_d128_seed0, 1, 2)
    # seed 0's curriculum: acl_glyphs_conv4's docstring, workdirs runs/conv4_d256_seed0/glyphs_{4,8,16,24}task
    acljax train --config acl_split_mnist_class_conv4 --workdir runs/conv4_d256_seed0/split_mnist_class_from24 \\
      --set "init_from='runs/conv4_d256_seed0/glyphs_24task'"                     # on the CPU
    python experiments/conv4_gpu.py [--record]

Every run's workdir also had `--set checkpoint_every=250` (it changes no number). This script reads each
glyph run's meta-test terms (results.json), recomputes them on this machine, and evaluates the paper-sized
Split-MNIST models (--runs evaluation runs each; entries of an earlier results file are kept while the model's
best step and --runs are unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from meta_training_seeds import SPLIT_MNIST_STREAMS, TERMS, stream_accuracy, stream_table

from acljax.acl.model import image_shape, load_config, load_params
from acljax.acl.pools import build_pools
from acljax.acl.trainer import TEST_STREAM, MetaTrainer, evaluate_terms
from acljax.pretrained import model_dir
from acljax.recording import add_output_arguments, output_dir

FROM_SCRATCH = {  # variant -> its 2-task glyph runs, by seed
    "Conv-4, D = 128 (quickstart sizes), lr 1e-3": {s: f"runs/conv4_d128_seed{s}/glyphs_2task" for s in range(3)},
    "Conv-4, D = 256 (paper sizes), lr 1e-3": {s: f"runs/conv4_d256_seed{s}/glyphs_2task" for s in range(3)},
    "Conv-4, D = 256 (paper sizes), lr 3e-4": {s: f"runs/conv4_d256_lr3e-4_seed{s}/glyphs_2task" for s in (1, 2)},
}
CHANCE = 20.0  # 5-way tasks
SPLIT_MNIST = {  # recipe -> scenario -> the models of its seeds
    "Conv-4 D = 256, from its 2-task glyph model": {
        scenario: [f"runs/conv4_d256_seed{s}/split_mnist_{scenario}" for s in range(3)]
        for scenario in ("domain", "class")},
    "Conv-4 D = 256, from its 24-task curriculum model": {
        "class": ["runs/conv4_d256_seed0/split_mnist_class_from24"]},
}
SPLIT_MNIST_CAPTION = (
    "ACC (%) of the paper-sized Conv-4 ACL models meta-finetuned on Split-MNIST, each seed from the 2-task glyph "
    "model of the same seed (seeds 1 and 2 never left chance there: the table above), or, seed 0 only, from its "
    "24-task curriculum model; 5 demos per class, every test image of every task.")


def run_row(variant: str, seed: int, workdir: str) -> dict:
    """A glyph run's meta-test terms (%) and its median logged seconds per step."""
    test = json.loads((model_dir(workdir) / "results.json").read_text())["test"]
    rows = [json.loads(line) for line in (model_dir(workdir) / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["sec_per_step"] for r in rows if "sec_per_step" in r]
    terms = {name: 100 * test[key] for name, key in TERMS.items()}
    return {"variant": variant, "seed": seed, "model": workdir, **terms,
            "learned": min(terms.values()) > CHANCE + 10, "sec_per_step": float(np.median(seconds))}


def recomputed_here(workdir: str) -> dict:
    """The run's meta-test (the same fixed episodes as its results.json) recomputed on this machine, with the SRWM
    implementation ``impl="auto"`` picks here: the GPU's numbers came from the Pallas kernels."""
    config = load_config(workdir)
    pools = build_pools(config, "test", progress=False)
    learner = MetaTrainer(config, image_shape(config, pools))
    here = evaluate_terms(learner, load_params(workdir, learner.params), pools, TEST_STREAM, config.test_batches)
    gpu = json.loads((model_dir(workdir) / "results.json").read_text())["test"]
    return {"model": workdir, "loss GPU": gpu["loss"], "loss here": here["loss"],
            "largest term accuracy difference": 100 * max(abs(gpu[k] - here[k]) for k in TERMS.values())}


def recomputed_table(rows: list[dict]) -> str:
    lines = ["| run | meta-test loss, GPU | the same here | relative difference | largest term accuracy difference |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['loss GPU']:.6f} | {r['loss here']:.6f} | "
                     f"{abs(r['loss here'] - r['loss GPU']) / r['loss GPU']:.1e} | "
                     f"{r['largest term accuracy difference']:.2f} points |")
    return "\n".join(lines) + (
        "\n\nThe meta-test of each run (16 fixed batches of 16 sequences, 1,280 queries per term) as its workdir's "
        "results.json has it from the GPU (Pallas kernels, jax 0.11.2) and recomputed on this machine from the same "
        "best/ parameters with its own SRWM implementation and versions.\n")


def from_scratch_table(rows: list[dict]) -> str:
    lines = ["| variant | seed | " + " | ".join(TERMS) + " | left chance | s/step (GPU shared by 3-4 runs) |",
             "|---|---|" + "---|" * (len(TERMS) + 2)]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['seed']} | " + " | ".join(f"{r[t]:.1f}" for t in TERMS) +
                     f" | {'yes' if r['learned'] else 'no'} | {r['sec_per_step']:.3f} |")
    return "\n".join(lines) + (
        "\n\nMeta-test query accuracy (%) on held-out glyph characters after 5000 steps (chance 20). Left chance: "
        f"every term above {CHANCE + 10:.0f}%. Seconds per step: the median of the logged values, several runs "
        "sharing one H100 (not a benchmark).\n")


def split_mnist_results(previous: dict, runs: int) -> dict:
    """recipe -> stream label -> one stream_accuracy entry per seed. Entries of ``previous`` (the results file's)
    are kept while their model's best step and the run count are unchanged: a rerun evaluates only what changed."""
    def best_step(model: str) -> int:
        return json.loads((model_dir(model) / "best.json").read_text())["step"]

    kept = {(r["model"], r["stream"], r["runs"], r["best_step"]): r
            for per_stream in previous.values() for entries in per_stream.values() for r in entries}

    def entry(model: str, stream: str) -> dict:
        key = (model, stream, runs, best_step(model))
        return kept.get(key) or {**stream_accuracy(model, stream, runs), "stream": stream, "runs": runs,
                                 "best_step": key[3]}

    return {recipe: {label: [entry(m, stream) for m in models[scenario]]
                     for label, (scenario, stream) in SPLIT_MNIST_STREAMS.items() if scenario in models}
            for recipe, models in SPLIT_MNIST.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="evaluation runs on each Split-MNIST stream")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    rows = [run_row(variant, seed, workdir) for variant, runs in FROM_SCRATCH.items() for seed, workdir in runs.items()]
    recomputed = [recomputed_here(r["model"]) for r in rows]
    path = out / "conv4_gpu.json"
    previous = json.loads(path.read_text())["split_mnist"] if path.exists() else {}
    split_mnist = split_mnist_results(previous, args.runs)
    results = {"from_scratch": rows, "recomputed": recomputed, "split_mnist": split_mnist}
    path.write_text(json.dumps(results, indent=1) + "\n")
    text = "\n".join([from_scratch_table(rows), recomputed_table(recomputed),
                      stream_table(split_mnist, args.runs, SPLIT_MNIST_CAPTION)])
    (out / "conv4_gpu.md").write_text(text)
    print(text + f"\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
