"""ACL meta-trained past the length curriculum: the shipped 24-task glyph model (2 -> 4 -> 8 -> 16 -> 24 tasks)
meta-finetuned on 32-task sequences (528 terms, the objective scanned over the tasks), three seeds, each on
the 5-, 10- and 20-task domain-incremental glyph streams beside the shipped model and the paper's Split-Omniglot
figures (92.3 / 82.0 / 67.6 %).

    acljax experiment run long_sequences --dry-run    # the plan
    acljax experiment run long_sequences              # 3 x 200 steps, about 20 min each on a 2-core CPU
    acljax experiment report long_sequences           # -> runs/long_sequences/report/
"""

import json

from acljax.experiment import Experiment, Run
from acljax.results import accuracy_table, stream_accuracy

SHIPPED = "glyphs_24task_acl"
STEPS = 200
STREAMS = ["split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20"]
PAPER = "| ACL, Split-Omniglot (paper) | 92.3 | 82.0 | 67.6 |"  # Irie et al., domain-IL ACC (%)


def report(workdirs, out):
    models = {f"{SHIPPED} (shipped, 24 tasks)": SHIPPED} | {f"then 32 tasks, {name}": path
                                                            for name, path in workdirs.items()}
    accuracies = {label: {stream: stream_accuracy(model, stream) for stream in STREAMS}
                  for label, model in models.items()}
    seeds = [f"then 32 tasks, {name}" for name in workdirs]
    table = accuracy_table(accuracies, STREAMS, {f"then 32 tasks, mean ± std over {len(seeds)} seeds": seeds},
                           fixed_rows=(PAPER,))
    note = (f"\n\nACC (%) over every task after the last one, 5 demos per class; per model mean ± std over 10 "
            f"evaluation runs; the seeds' row: mean ± std (population) of their means. Each seed meta-finetuned "
            f"{SHIPPED} for {STEPS} steps on 32-task sequences (its best validation parameters).\n")
    (out / "long_sequences.json").write_text(json.dumps(accuracies, indent=1) + "\n")
    (out / "long_sequences.md").write_text(table + note)
    return [out / "long_sequences.json", out / "long_sequences.md"]


EXPERIMENT = Experiment(
    name="long_sequences",
    runs=tuple(Run(f"seed{seed}", "acl_glyphs_32task",
                   (f"seed={seed}", f"steps={STEPS}", "validate_every=100",
                    "checkpoint_every=100")) for seed in range(3)),
    report=report)
