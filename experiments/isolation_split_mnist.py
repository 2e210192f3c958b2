"""Split-MNIST with the parameter-isolation methods beside naive and joint training, and what each adds.

    acljax experiment run isolation_split_mnist      # every row and scenario, 5 seeds
    acljax experiment report isolation_split_mnist   # -> runs/isolation_split_mnist/report/

Hsu et al.'s training protocol (MLP 784-400-400, 4 epochs per task, batch 128, Adam 1e-3):
naive fine-tuning, joint training (the upper bound), per-task LoRA deltas (rank 8) or bottleneck adapters
(width 32) on the network frozen after task 0, progressive networks (a column per task with laterals), task
tokens (a learned token per task read first by a frozen SRWM sequence model of the image's rows; these four
are task-IL only: they need the task id), and a mixture of per-task experts, routed by the task id
(task-IL) or by the most confident trained expert (every scenario). Each row: ACC, BWT and the parameters
the method adds beside the network's own. The job (kwargs: seeds, rows, scenarios) writes
runs/isolation_split_mnist/methods/isolation_split_mnist.json; finished (row, scenario) pairs there are kept
while their configuration and seed count are unchanged, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from acljax.cl.evaluate import sequential_report
from acljax.cl.methods import PNN, Adapters, Experts, Joint, LoRA, Method, TaskTokens
from acljax.cl.models import mlp_model
from acljax.cl.trainer import SequentialConfig, migrate_record
from acljax.data.streams import SCENARIOS
from acljax.experiment import Experiment, Job

ROWS = {  # name -> (method, scenarios it runs in)
    "Naive (Adam)": (Method(), SCENARIOS),
    "Joint (upper bound)": (Joint(), SCENARIOS),
    "LoRA r=8": (LoRA(rank=8, max_tasks=5), ("task",)),
    "Experts, task id": (Experts(max_tasks=5), ("task",)),
    "Adapters m=32": (Adapters(bottleneck=32, max_tasks=5), ("task",)),
    "PNN": (PNN(max_tasks=5), ("task",)),
    "Task tokens (SRWM)": (TaskTokens(features=64, heads=4, max_tasks=5), ("task",)),
    "Experts, confidence": (Experts(max_tasks=5, routing="confidence"), SCENARIOS),
}
NETWORK = mlp_model((28, 28, 1), (400, 400), 10)


def table(results: dict) -> str:
    network = sum(math.prod(w.shape) for w in jax.tree.leaves(jax.eval_shape(NETWORK.init, jax.random.key(0))))
    lines = ["| method | " + " | ".join(f"{s}-IL ACC | {s}-IL BWT" for s in SCENARIOS)
             + " | added for task 2 | added for 5 tasks |", "|---|" + "---|---|" * len(SCENARIOS) + "---|---|"]
    for name, (method, _) in ROWS.items():
        cells = []
        for s in SCENARIOS:
            r = results.get(f"{name}/{s}")
            cells += ["-", "-"] if r is None else [
                f"{100 * r['ACC']['mean']:.2f} ± {100 * r['ACC']['std']:.2f} ({r['seeds']})",
                f"{100 * r['BWT']['mean']:.2f} ± {100 * r['BWT']['std']:.2f}"]
        second, total = method.added_parameters(NETWORK, 1), sum(method.added_parameters(NETWORK, t) for t in range(5))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {second:,} | {total:,} ({100 * total / network:.0f}%) |")
    return "\n".join(lines) + (f"\n\nmean ± std over (n) seeds, %; the network itself (10 outputs): {network:,} "
                                "parameters; added: beyond it, for the second task and for all five.\n")


def methods(workdir: Path, seeds: int = 5, rows: list[str] | None = None, scenarios: list[str] | None = None) -> None:
    """Each of ``rows`` (default: every one of ROWS) in each of ``scenarios`` it runs in (default: every one), with
    ``seeds`` seeds, into ``workdir/isolation_split_mnist.json``."""
    rows, scenarios = rows or list(ROWS), scenarios or list(SCENARIOS)
    for arg, given, accepted in (("rows", rows, ROWS), ("scenarios", scenarios, SCENARIOS)):
        if unknown := [g for g in given if g not in accepted]:
            raise ValueError(f"{arg}: {unknown} are not among {list(accepted)}")
    path = Path(workdir) / "isolation_split_mnist.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in rows:
        method, runs_in = ROWS[name]
        for scenario in [s for s in scenarios if s in runs_in]:
            key, config = f"{name}/{scenario}", SequentialConfig(method=method)
            recorded = config.to_dict()
            stored = results.get(key, {"seeds": 0, "config": {}})
            if stored["seeds"] >= seeds and migrate_record(stored["config"]) == recorded:
                print(f"{key}: skipped, already in {path} with this configuration", flush=True)
                continue
            start = time.time()
            report = sequential_report(config, "split:mnist", seeds=seeds, scenario=scenario)
            results[key] = {**report.summary, "seeds": seeds, "seconds": round(time.time() - start, 1),
                            "config": recorded, "mean_matrix": np.asarray(report.matrices).mean(0).tolist()}
            path.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{key}: ACC {100 * results[key]['ACC']['mean']:.2f} in {results[key]['seconds']} s", flush=True)


def report(workdirs, out):
    results = json.loads((workdirs["methods"] / "isolation_split_mnist.json").read_text())
    (out / "isolation_split_mnist.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "isolation_split_mnist.md").write_text(table(results))
    return [out / "isolation_split_mnist.json", out / "isolation_split_mnist.md"]


EXPERIMENT = Experiment("isolation_split_mnist", jobs=(Job("methods", methods, (("seeds", 5),)),), report=report)
