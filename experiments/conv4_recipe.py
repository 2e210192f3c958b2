"""The paper's Conv-4 model (D = 256, 16 heads) with the scaled label feedback (``model.feedback_scale`` =
sqrt(128), experiments/feedback_scale.py), three meta-training seeds, sized for a GPU: per seed, 5,000 steps of
2-task glyph sequences, then Split-MNIST domain-IL (1,500 steps, from that model), the length curriculum
(4 -> 8 -> 16 -> 24 tasks, 1,500 steps each) and class-IL Split-MNIST from its 24-task model (1,500 steps).

Targets (mean over the 3 seeds): Split-MNIST domain-IL >= 84, class-IL 5 tasks >= 70, class-IL 2 tasks >= 93,
the 20-task glyph stream > 67.6 (the paper's Split-Omniglot figure).

    acljax experiment run conv4_recipe --device gpu --dry-run
    acljax experiment run conv4_recipe                # on a GPU: 42,000 steps in all
    acljax experiment report conv4_recipe --device gpu   # the GPU runs' workdirs, on any machine

On a CPU (``--device cpu``, the default there; workdirs in ``runs/conv4_recipe-cpu``) the same graph runs with the
quickstart's MLP model in place of Conv-4 (label feedback scaled by sqrt of its 256 MLP features): the paper-sized
Conv-4 24-task step alone takes 1.5 s at batch 2 on this project's 2-core CPU. Its numbers are the MLP model's,
not the targets' model.
"""

import json

from acljax.experiment import Experiment, Run, chain
from acljax.results import accuracy_table, stream_accuracy

SEEDS = (0, 1, 2)
STAGES = (4, 8, 16, 24)
MODEL = ("model.feedback_scale=11.3137",)  # acl_glyphs_conv4 is the paper's model with 10 outputs
CONV4 = ("model.encoder='conv4'", "model.num_features=256", "model.num_heads=16", "model.hidden_features=512",
         *MODEL)  # the curriculum configs are the MLP's: the paper's model on them
MLP = ("model.encoder='mlp'", "model.num_features=128", "model.num_heads=8", "model.hidden_features=256",
       "model.feedback_scale=16.0")  # acl_glyphs_quickstart's model, for a CPU
TARGETS = "| target (mean over seeds) | 84 | 70 | 93 | 67.6 |"


def runs(seed: int) -> list[Run]:
    curriculum = chain([(f"conv4_2task_seed{seed}", "acl_glyphs_conv4")] +
                       [(f"conv4_{tasks}task_seed{seed}", f"acl_glyphs_{tasks}task") for tasks in STAGES],
                       (f"seed={seed}", *CONV4))
    glyphs = curriculum[0].name
    return [*curriculum,
            Run(f"split_mnist_domain_seed{seed}", "acl_split_mnist_domain_conv4", (f"seed={seed}", *MODEL),
                after=glyphs),
            Run(f"split_mnist_class_seed{seed}", "acl_split_mnist_class_conv4", (f"seed={seed}", *MODEL),
                after=curriculum[-1].name)]


def report(workdirs, out):
    columns = {"split_mnist_domain": "split_mnist_domain_seed{}", "split_mnist_class": "split_mnist_class_seed{}",
               "split_mnist_class2": "split_mnist_class_seed{}", "split_glyphs_domain20": "conv4_24task_seed{}"}
    accuracies = {}
    for seed in SEEDS:
        label = f"seed {seed}"
        accuracies[label] = {stream: stream_accuracy(workdirs[run.format(seed)], stream)
                             for stream, run in columns.items()}
    streams = list(columns)
    table = accuracy_table(accuracies, streams, {f"mean ± std over {len(SEEDS)} seeds": list(accuracies)},
                           fixed_rows=(TARGETS,))
    note = ("\n\nACC (%), 5 demos per class, mean ± std over 10 evaluation runs per seed: Split-MNIST domain-IL "
            "(domain model), class-IL over 5 and 2 tasks (class model), the 20-task glyph stream (24-task model).\n")
    (out / "conv4_recipe.json").write_text(json.dumps(accuracies, indent=1) + "\n")
    (out / "conv4_recipe.md").write_text(table + note)
    return [out / "conv4_recipe.json", out / "conv4_recipe.md"]


EXPERIMENT = Experiment("conv4_recipe", tuple(run for seed in SEEDS for run in runs(seed)), report=report,
                        sizes={"cpu": MLP})
