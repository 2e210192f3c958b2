"""Split-MNIST baselines with Hsu et al. 2018's protocol, beside their Table 2.

    acljax experiment run hsu_split_mnist       # every method, scenario and seed: hours on a 2-core CPU
    acljax experiment report hsu_split_mnist    # -> runs/hsu_split_mnist/report/hsu_split_mnist.{json,md}

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
use every training example of the task (their protocol), or importance_samples examples per task for a
quicker run (the job's kwargs: seeds, methods, scenarios, importance_samples).
MNIST: all 60,000 training images (the pickle's train + validation).
The job writes runs/hsu_split_mnist/baselines/hsu_split_mnist.json; finished (method, scenario) pairs there are
kept while their configuration and seed count are unchanged (each skip is printed), so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from acljax.cl.hsu2018 import LABELS, METHODS, PUBLISHED, SCENARIOS, STREAMS, config_for
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.data import ImageSet, channel_statistics, load
from acljax.data.streams import split_stream
from acljax.eval import evaluate
from acljax.experiment import Experiment, Job


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


def baselines(workdir: Path, seeds: int = 10, methods: list[str] | None = None, scenarios: list[str] | None = None,
              importance_samples: int | None = None) -> None:
    """Train and evaluate each of ``methods`` (default: every one of METHODS) on each of ``scenarios`` (default:
    every one of STREAMS) with ``seeds`` seeds into ``workdir/hsu_split_mnist.json``."""
    methods, scenarios = methods or list(METHODS), scenarios or list(STREAMS)
    for arg, given, accepted in (("methods", methods, METHODS), ("scenarios", scenarios, STREAMS)):
        if unknown := [g for g in given if g not in accepted]:
            raise ValueError(f"{arg}: {unknown} are not among {list(accepted)}")
    train_part, validation, test = (load("mnist", s) for s in ("train", "validation", "test"))
    train = ImageSet(np.concatenate([train_part.x, validation.x]), np.concatenate([train_part.y, validation.y]))
    mean, std = channel_statistics("mnist")
    path = Path(workdir) / "hsu_split_mnist.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for scenario in scenarios:
        stream = split_stream(train, test, scenario=STREAMS[scenario][0], num_tasks=STREAMS[scenario][1])
        for name in methods:
            key = f"{name}/{scenario}"
            config = config_for(name, scenario, importance_samples)
            if key in results and results[key]["seeds"] >= seeds and same_config(results[key]["config"], config):
                print(f"{key}: skipped, already in {path} with {results[key]['seeds']} seeds and this "
                      "configuration (delete it there to run it again)", flush=True)
                continue
            start = time.time()
            learner = SequentialLearner(config, stream.num_outputs, (28, 28, 1), mean[0], std[0], progress=False)
            report = evaluate(learner, stream.tasks, list(range(seeds)), [t.name for t in stream.tasks])
            results[key] = {**report.summary, "seeds": seeds, "seconds": round(time.time() - start, 1),
                            "config": config.to_dict(), "mean_matrix": report.matrices.mean(0).tolist()}
            path.write_text(json.dumps(results, indent=1) + "\n")
            published = f"{PUBLISHED[name][SCENARIOS.index(scenario)]:.2f}" if (
                name in PUBLISHED and scenario in SCENARIOS) else "-"
            print(f"{key}: ACC {100 * results[key]['ACC']['mean']:.2f} (Hsu et al. {published}) in "
                  f"{results[key]['seconds']} s", flush=True)


def report(workdirs, out):
    results = json.loads((workdirs["baselines"] / "hsu_split_mnist.json").read_text())
    (out / "hsu_split_mnist.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "hsu_split_mnist.md").write_text(table(results))
    return [out / "hsu_split_mnist.json", out / "hsu_split_mnist.md"]


EXPERIMENT = Experiment("hsu_split_mnist", jobs=(Job("baselines", baselines, (("seeds", 10),)),), report=report)
