"""Split-MNIST baselines with Hsu et al. 2018's protocol, beside their Table 2.

    python experiments/hsu_split_mnist.py [--seeds 10] [--methods ...] [--scenarios task domain class class2]

Scenarios: Hsu et al.'s three on 5 tasks of 2 digits, and "class2", class-incremental on the first 2 tasks
(digits 0-3; not in their table: the paper's third Split-MNIST setting), with class-IL strengths.

MLP 784-400-400, 4 epochs per task, batch 128, Adam 1e-3 (SGD/Adagrad 0.01), their strengths
(converted: their loss has no 1/2, so strength = 2 x theirs), EWC's Fisher from the argmax label,
one example at a time (their default), online EWC with gamma = 1, SI with xi = 0.1, LwF with weight 1
and temperature 2, naive rehearsal with 1,100 stored examples (the same static memory as the
regularisers in their table; "-C", their compressed variant, holds 4,400), a reservoir filled at each
task's end and a memory batch of 128 beside each batch of 128; GEM as in their code (SGD 0.01, margin
0.5, 1,100 examples: 220 per task, each task's whole memory constraining every step); DGR and RtF as
van de Ven & Tolias ran them (Adam 1e-3, 21 epochs per task, VAEs with two hidden layers of 400 units,
100 latent dimensions, Bernoulli pixels);
A-GEM, ER-ACE and DER++ (not in their table) with 1,100 examples; A-GEM's reference batches hold 256, ER-ACE's
and DER++'s memory batches 128 (DER++: logit weight 0.2, label weight 0.5). Fisher and MAS importances
use every training example of the task (their protocol), or --importance-samples examples per task for a
quicker run.
MNIST: all 60,000 training images (the pickle's train + validation).
Results go to runs/hsu_split_mnist/hsu_split_mnist.{json,md} (--out DIR elsewhere; --record: the recorded
experiments/results/). Finished (method, scenario) pairs in that folder are kept while their configuration
and seed count are unchanged (each skip is printed), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from acljax.cl.methods import AGEM, DGR, ERACE, EWC, GEM, L2, MAS, SI, DERpp, Joint, LwF, Method, OnlineEWC, Replay, RtF
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.data import ImageSet, channel_statistics, load
from acljax.data.streams import split_stream
from acljax.eval import evaluate
from acljax.recording import add_output_arguments, output_dir

SCENARIOS = ("task", "domain", "class")  # Hsu et al.'s, 5 tasks
STREAMS = {**{s: (s, 5) for s in SCENARIOS}, "class2": ("class", 2)}  # --scenarios name -> (scenario, tasks)
LABELS = {"task": "task-IL", "domain": "domain-IL", "class": "class-IL", "class2": "class-IL 2 tasks"}
PUBLISHED = {  # Hsu et al. 2018, Table 2: accuracy (%) over all tasks after the last, mean of 10 runs
    "Adam": (93.46, 55.16, 19.71), "SGD": (97.98, 63.20, 19.46), "Adagrad": (98.06, 58.08, 19.82),
    "L2": (98.18, 66.00, 22.52), "EWC": (97.70, 58.85, 19.80), "Online EWC": (98.04, 57.33, 19.77),
    "SI": (98.56, 64.76, 19.67), "MAS": (99.22, 68.57, 19.52), "LwF": (99.60, 71.02, 24.17),
    "Naive rehearsal": (99.40, 95.16, 90.78), "Naive rehearsal-C": (99.57, 97.11, 95.59),
    "GEM": (98.42, 96.16, 92.20), "DGR": (99.47, 95.74, 91.24), "RtF": (99.66, 97.31, 92.56),
    "Offline": (99.52, 98.59, 97.53),
}
THEIR_STRENGTHS = {"L2": (0.01, 0.5, 100), "EWC": (100, 100, 600), "Online EWC": (400, 700, 100),
                   "SI": (300, 3000, 600), "MAS": (1, 10000, 1)}
METHODS = {  # name -> (the method, training fields); strengths per scenario: THEIR_STRENGTHS
    "Adam": (Method(), dict(optimizer="adam", learning_rate=1e-3)),
    "SGD": (Method(), dict(optimizer="sgd", learning_rate=0.01)),
    "Adagrad": (Method(), dict(optimizer="adagrad", learning_rate=0.01)),
    "L2": (L2(), {}), "EWC": (EWC(fisher_estimator="argmax"), {}),
    "Online EWC": (OnlineEWC(gamma=1.0, fisher_estimator="argmax"), {}),
    "SI": (SI(xi=0.1), {}), "MAS": (MAS(), {}),
    "LwF": (LwF(strength=1.0, temperature=2.0), {}),
    "Naive rehearsal": (Replay(memory_size=1100, memory_batch=128), {}),
    "Naive rehearsal-C": (Replay(memory_size=4400, memory_batch=128), {}),
    "A-GEM": (AGEM(memory_size=1100, memory_batch=256), {}),
    "GEM": (GEM(memory_size=1100, max_tasks=5, margin=0.5), dict(optimizer="sgd", learning_rate=0.01)),
    "ER-ACE": (ERACE(memory_size=1100, memory_batch=128), {}),
    "DER++": (DERpp(memory_size=1100, memory_batch=128, alpha=0.2, beta=0.5), {}),
    # van de Ven & Tolias 2018's Split-MNIST settings, whose numbers Hsu et al. list: Adam 1e-3, 2,000
    # iterations of batch 128 per task (21 epochs of a 12,000-image task), a VAE with two hidden layers of 400
    # units (encoder and decoder) and 100 latent dimensions, a Bernoulli likelihood of the pixels
    "DGR": (DGR(latent=100, vae_hidden=(400, 400), likelihood="bernoulli"), dict(learning_rate=1e-3, epochs=21)),
    "RtF": (RtF(latent=100, hidden=(400, 400), temperature=2.0, likelihood="bernoulli"),
            dict(learning_rate=1e-3, epochs=21)),
    "Offline": (Joint(), {}),
}


def config_for(name: str, scenario: str, importance_samples: int | None = None) -> SequentialConfig:
    """``name``'s config for ``scenario`` (a key of STREAMS); ``importance_samples`` for Fisher/MAS methods."""
    method, training = METHODS[name]
    if name in THEIR_STRENGTHS:
        theirs = THEIR_STRENGTHS[name][SCENARIOS.index(STREAMS[scenario][0])]
        method = dataclasses.replace(method, strength=2.0 * theirs)
    if hasattr(method, "importance_samples"):
        method = dataclasses.replace(method, importance_samples=importance_samples)
    return SequentialConfig(method=method, **training)


def same_config(stored: dict, config: SequentialConfig) -> bool:
    """A stored row's config (either form, a field it predates holding its default) equals ``config``."""
    try:
        return SequentialConfig.from_dict(stored) == config
    except (TypeError, ValueError):  # a field no config has now
        return False


def table(results: dict) -> str:
    header = [f"{LABELS[s]} {who}" for s in STREAMS for who in ("acljax", "Hsu et al.")[:1 + (s in SCENARIOS)]]
    lines = ["| method | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for name in dict.fromkeys([*PUBLISHED, *METHODS]):
        cells = []
        for s in STREAMS:
            r = results.get(f"{name}/{s}")
            cells.append(f"{100 * r['ACC']['mean']:.2f} ± {100 * r['ACC']['std']:.2f} ({r['seeds']})" if r else "-")
            if s in SCENARIOS:
                cells.append(f"{PUBLISHED[name][SCENARIOS.index(s)]:.2f}" if name in PUBLISHED else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nacljax: mean ± std of ACC (%) over (n) seeds; Hsu et al.: mean of 10 runs.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--scenarios", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    parser.add_argument("--importance-samples", type=int, default=None,
                        help="examples per task for Fisher/MAS importances (default: every one)")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    out = output_dir(args, __file__)
    train_part, validation, test = (load("mnist", s) for s in ("train", "validation", "test"))
    train = ImageSet(np.concatenate([train_part.x, validation.x]), np.concatenate([train_part.y, validation.y]))
    mean, std = channel_statistics("mnist")
    path = out / "hsu_split_mnist.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for scenario in args.scenarios:
        stream = split_stream(train, test, scenario=STREAMS[scenario][0], num_tasks=STREAMS[scenario][1])
        for name in args.methods:
            key = f"{name}/{scenario}"
            config = config_for(name, scenario, args.importance_samples)
            if key in results and results[key]["seeds"] >= args.seeds and same_config(results[key]["config"], config):
                print(f"{key}: skipped, already in {path} with {results[key]['seeds']} seeds and this "
                      "configuration (delete it there, or give another --out, to run it again)", flush=True)
                continue
            start = time.time()
            learner = SequentialLearner(config, stream.num_outputs, (28, 28, 1), mean[0], std[0], progress=False)
            report = evaluate(learner, stream.tasks, list(range(args.seeds)), [t.name for t in stream.tasks])
            results[key] = {**report.summary, "seeds": args.seeds, "seconds": round(time.time() - start, 1),
                            "config": config.to_dict(),
                            "mean_matrix": report.matrices.mean(0).tolist()}
            path.write_text(json.dumps(results, indent=1) + "\n")
            (out / "hsu_split_mnist.md").write_text(table(results))
            published = f"{PUBLISHED[name][SCENARIOS.index(scenario)]:.2f}" if (
                name in PUBLISHED and scenario in SCENARIOS) else "-"
            print(f"{key}: ACC {100 * results[key]['ACC']['mean']:.2f} (Hsu et al. {published}) in "
                  f"{results[key]['seconds']} s", flush=True)
    print(table(results))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
