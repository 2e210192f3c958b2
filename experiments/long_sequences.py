"""ACL meta-trained past the length curriculum: the shipped 24-task glyph model (2 -> 4 -> 8 -> 16 -> 24 tasks)
meta-finetuned on 32-task sequences (528 terms, the objective scanned over the tasks), three seeds, each on
the 5-, 10- and 20-task domain-incremental glyph streams beside the shipped model and the paper's Split-Omniglot
figures (92.3 / 82.0 / 67.6 %).

    acljax experiment run long_sequences --dry-run    # the plan
    acljax experiment run long_sequences              # 3 x 200 steps, about 20 min each on a 2-core CPU
    acljax experiment report long_sequences           # -> runs/long_sequences/report/
"""

import json

from acljax.experiment import Experiment, Run, commits

SHIPPED = "glyphs_24task_acl"
STEPS = 200
LENGTHS = (5, 10, 20)
PAPER = {5: 92.3, 10: 82.0, 20: 67.6}  # Irie et al., Split-Omniglot domain-IL ACC (%), ACL
EVALUATION_RUNS = 10  # each draws its own demos (5 per class)


def report(workdirs, out):
    """ACC per model and stream length (mean ± std over evaluation runs), the seeds' mean ± std (population)."""
    import numpy as np

    from acljax.acl.in_context import in_context_report

    acc = {}
    for label, model in [(SHIPPED, SHIPPED), *workdirs.items()]:
        acc[label] = {}
        for n in LENGTHS:
            summary = in_context_report(str(model), f"split_glyphs_domain{n}", runs=EVALUATION_RUNS, shots=5,
                                        progress=False).summary["ACC"]
            acc[label][n] = {"mean": 100 * summary["mean"], "std": 100 * summary["std"]}

    def cells(values):
        return " | ".join(values) + " |"

    lines = ["| model | " + " | ".join(f"{n} tasks" for n in LENGTHS) + " | code |",
             "|---|" + "---|" * (len(LENGTHS) + 1),
             "| ACL, Split-Omniglot (paper) | " + cells(f"{PAPER[n]:.1f}" for n in LENGTHS) + " - |",
             f"| {SHIPPED} (shipped, meta-trained on 24 tasks) | "
             + cells(f"{acc[SHIPPED][n]['mean']:.1f} ± {acc[SHIPPED][n]['std']:.1f}" for n in LENGTHS) + " - |"]
    for name, workdir in workdirs.items():
        lines.append(f"| then 32 tasks, {name} | " + cells(f"{acc[name][n]['mean']:.1f} ± {acc[name][n]['std']:.1f}"
                                                           for n in LENGTHS) + f" {commits(workdir)} |")
    seeds = {n: np.array([acc[name][n]["mean"] for name in workdirs]) for n in LENGTHS}
    lines.append(f"| then 32 tasks, mean ± std over {len(workdirs)} seeds | "
                 + cells(f"**{seeds[n].mean():.1f} ± {seeds[n].std():.1f}**" for n in LENGTHS) + " - |")
    lines.append(f"\nACC (%): accuracy over every task after the last one, 5 demos per class; per model mean ± std "
                 f"over {EVALUATION_RUNS} evaluation runs, the seeds' row mean ± std (population) of their means. "
                 f"Each seed meta-finetuned {SHIPPED} for {STEPS} steps on 32-task sequences (best validation "
                 "parameters).")
    (out / "long_sequences.json").write_text(json.dumps(acc, indent=1) + "\n")
    (out / "long_sequences.md").write_text("\n".join(lines) + "\n")
    return [out / "long_sequences.json", out / "long_sequences.md"]


EXPERIMENT = Experiment(
    name="long_sequences",
    runs=tuple(Run(f"seed{seed}", "acl_glyphs_32task",
                   (f"init_from='{SHIPPED}'", f"seed={seed}", f"steps={STEPS}", "validate_every=100",
                    "checkpoint_every=100")) for seed in range(3)),
    report=report)
