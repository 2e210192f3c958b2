"""The length curriculum over meta-training sequence length, 2 -> 4 -> 8 -> 16 -> 24 tasks of 5-way 5-shot glyph
tasks (1,500 steps per stage, constant 3e-4), for meta-training seeds 0, 1 and 2: each seed's chain starts from
its own 2-task quickstart model (seed 0: the shipped ``glyphs_2task_acl``; seeds 1 and 2 meta-trained here,
5,000 steps), and its 8- and 24-task models are evaluated on the 5-, 10- and 20-task glyph streams. The MLP
model of the quickstart, sized for a CPU (the Conv-4 chain: ``conv4_recipe``).

    acljax experiment run length_curriculum --dry-run
    acljax experiment run length_curriculum           # hours on a 2-core CPU (the seeds' chains one after another)
    acljax experiment report length_curriculum
"""

import json

from acljax.experiment import Experiment, accuracy_table, chain, stream_accuracies

SEEDS = (0, 1, 2)
STAGES = (4, 8, 16, 24)
REPORTED = (8, 24)
STREAMS = ["split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20"]
PAPER = "| ACL, Split-Omniglot (paper) | 92.3 | 82.0 | 67.6 |"


def seed_chain(seed: int) -> list:
    """Seed 0 starts from the shipped 2-task model (``acl_glyphs_4task``'s ``init_from``); the others from their
    own 2-task model."""
    own = [] if seed == 0 else [(f"glyphs_2task_seed{seed}", "acl_glyphs_quickstart")]
    return chain(own + [(f"glyphs_{tasks}task_seed{seed}", f"acl_glyphs_{tasks}task") for tasks in STAGES],
                 (f"seed={seed}",))


def report(workdirs, out):
    models = {name: path for name, path in workdirs.items()
              if any(name.startswith(f"glyphs_{tasks}task_") for tasks in REPORTED)}
    accuracies = stream_accuracies(models, STREAMS)
    groups = {f"{tasks}-task curriculum, mean ± std over {len(SEEDS)} seeds":
              [f"glyphs_{tasks}task_seed{seed}" for seed in SEEDS] for tasks in REPORTED}
    note = ("\n\nACC (%) over every task after the last one, 5 demos per class; per model mean ± std over 10 "
            "evaluation runs; per stage the mean ± std (population) of the seeds' means.\n")
    (out / "length_curriculum.json").write_text(json.dumps(accuracies, indent=1) + "\n")
    (out / "length_curriculum.md").write_text(accuracy_table(accuracies, STREAMS, groups, fixed_rows=(PAPER,)) + note)
    return [out / "length_curriculum.json", out / "length_curriculum.md"]


EXPERIMENT = Experiment("length_curriculum", tuple(run for seed in SEEDS for run in seed_chain(seed)), report=report)
