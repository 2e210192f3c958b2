"""Error bars over meta-training seeds.

The quickstart glyph pair (ACL and no ACL) meta-trained with seeds 0 (the shipped models), 1 and 2, each
reported two ways: its meta-test terms (held-out characters, 16 batches of 16 two-task sequences, from its
results.json) and its accuracy on the 5-task glyph stream. The length curriculum (2 -> 4 -> 8 -> 16 -> 24
tasks) continued from each seed's glyph ACL model with the same seed (seed 0: the shipped 8- and 24-task
models), on the 5-, 10- and 20-task glyph streams. The Split-MNIST models, three recipes, each seed
meta-finetuned from its own chain with the same seed: from the 24-task curriculum model (the configs as they
are; seed 0: the shipped models), from the 2-task glyph model (the recipe shipped until 2026-11-24), and the
same with the glyphs' rotations as extra classes (as the paper's Omniglot); on the Split-MNIST streams.
Stream accuracies: 10 evaluation runs, each with its own demos. Mean ± std over meta-training seeds, and
separately the mean over seeds of the std over evaluation runs.

    acljax experiment run meta_training_seeds --dry-run   # 34 runs; the curriculum: 65 min per seed on 2 cores
    acljax experiment run meta_training_seeds
    acljax experiment report meta_training_seeds          # -> runs/meta_training_seeds/report/

The recorded tables were reported from workdirs made before experiments were declared, by ``acljax train``
commands that this graph declares run for run, under the same names: ``--root runs``.
"""

import json

import numpy as np

from acljax.experiment import Experiment, Run, chain
from acljax.results import SPLIT_MNIST_STREAMS, TERMS, meta_test_terms, seeds_table, stream_accuracy

SEEDS = (1, 2)  # seed 0: the shipped models
SCENARIOS = ("domain", "class")
ROTATIONS = "pools.0.rotations=True"
GLYPH_STREAM = "split_glyphs_domain5"
LONG_STREAMS = ("split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20")
RUNS = 10  # evaluation runs per stream


def seed_runs(seed: int) -> list[Run]:
    curriculum = chain([(f"glyphs_{tasks}task_seed{seed}", f"acl_glyphs_{tasks}task") for tasks in (4, 8, 16, 24)],
                       (f"seed={seed}",), after=f"glyphs_2task_acl_seed{seed}")
    return [Run(f"glyphs_2task_acl_seed{seed}", "acl_glyphs_quickstart", (f"seed={seed}",)),
            Run(f"glyphs_2task_no_acl_seed{seed}", "acl_glyphs_quickstart", (f"seed={seed}", "use_acl=False")),
            *curriculum,
            *(Run(f"split_mnist_{scenario}_from24_seed{seed}", f"acl_split_mnist_{scenario}", (f"seed={seed}",),
                  after=curriculum[-1].name) for scenario in SCENARIOS)]


def two_task_recipe_runs(scenario: str) -> list[Run]:
    """Split-MNIST from the 2-task glyph model of each seed (seed 0: the shipped one), with and without rotations."""
    runs = []
    for prefix, extra in (("", ()), ("rot_", (ROTATIONS,))):
        config = f"acl_split_mnist_{scenario}"
        runs.append(Run(f"{prefix}split_mnist_{scenario}_seed0", config, ("init_from='glyphs_2task_acl'", *extra)))
        runs += [Run(f"{prefix}split_mnist_{scenario}_seed{seed}", config, (f"seed={seed}", *extra),
                     after=f"glyphs_2task_acl_seed{seed}") for seed in SEEDS]
    return runs


def models(workdirs: dict) -> tuple[dict, dict, dict]:
    """The models of each table, seeds 0, 1, 2 in order: {row: [models]}, {recipe: [models]}, {recipe: {scenario:
    [models]}}."""
    def seeds(shipped, run):
        return [shipped] + [workdirs[run.format(seed)] for seed in SEEDS]

    glyphs = {"ACL": seeds("glyphs_2task_acl", "glyphs_2task_acl_seed{}"),
              "no ACL": seeds("glyphs_2task_no_acl", "glyphs_2task_no_acl_seed{}")}
    curriculum = {f"{tasks}-task curriculum": seeds(f"glyphs_{tasks}task_acl", f"glyphs_{tasks}task_seed{{}}")
                  for tasks in (8, 24)}
    split_mnist = {
        "from the 24-task model (shipped)": {s: seeds(f"split_mnist_{s}_acl", f"split_mnist_{s}_from24_seed{{}}")
                                             for s in SCENARIOS},
        "from the 2-task model": {s: [workdirs[f"split_mnist_{s}_seed{seed}"] for seed in (0, *SEEDS)]
                                  for s in SCENARIOS},
        "from the 2-task model, rotations": {s: [workdirs[f"rot_split_mnist_{s}_seed{seed}"] for seed in (0, *SEEDS)]
                                             for s in SCENARIOS}}
    return glyphs, curriculum, split_mnist


CURRICULUM_CAPTION = (
    "ACC (%) of the length curriculum's models on N-task domain-incremental streams of held-out glyph characters "
    "(5-way, 5 demos per class), each seed's chain starting from the quickstart glyph ACL model of that seed "
    "(seed 0: the shipped `glyphs_8task_acl` and `glyphs_24task_acl`).")
SPLIT_MNIST_CAPTION = (
    "ACC (%) of the ACL models meta-finetuned on Split-MNIST (`acl_split_mnist_domain`, `acl_split_mnist_class`), "
    "each seed starting from the glyph model of the same seed; 5 demos per class, every test image of every task. "
    "Recipes: from the 24-task curriculum model (the configs as they are; seed 0 is the shipped model), from the "
    "2-task quickstart glyph model (`--set \"init_from='glyphs_2task_acl'\"`, the recipe shipped until 2026-11-24) and "
    "the same with rotations (`--set pools.0.rotations=True`: the glyphs' 90/180/270-degree rotations as extra "
    "classes, as the paper's Omniglot).")


def glyph_table(results: dict) -> str:
    """Markdown from {row: [{TERMS label: %, "stream ACC", "stream ACC eval std"} per seed]}."""
    columns = [*TERMS, "stream ACC"]
    lines = ["| model | seeds | " + " | ".join(columns) + " | stream ACC: std over evaluation runs |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for label, per_seed in results.items():
        cells = [f"{np.mean([r[c] for r in per_seed]):.1f} ± {np.std([r[c] for r in per_seed]):.1f}" for c in columns]
        spread = np.mean([r["stream ACC eval std"] for r in per_seed])
        lines.append(f"| {label} | {len(per_seed)} | " + " | ".join(cells) + f" | {spread:.1f} |")
    return "\n".join(lines) + (
        f"\n\nMeta-test terms: query accuracy (%) on held-out characters; stream ACC: `{GLYPH_STREAM}` (5 tasks of "
        "5-way held-out characters, domain-incremental, 5 demos per class). Mean ± std over meta-training seeds "
        f"(population std); the last column is the mean over seeds of the std over {RUNS} evaluation runs.\n")


def report(workdirs, out):
    glyphs, curriculum, split_mnist = models(workdirs)

    def accuracy(model, stream):
        return {"model": str(model), **stream_accuracy(model, stream, runs=RUNS)}

    def glyph_row(model):
        stream = stream_accuracy(model, GLYPH_STREAM, runs=RUNS)
        return {"model": str(model), **meta_test_terms(model), "stream ACC": stream["ACC"],
                "stream ACC eval std": stream["ACC eval std"]}

    results = {label: [glyph_row(m) for m in seeds] for label, seeds in glyphs.items()}
    long_streams = {recipe: {stream: [accuracy(m, stream) for m in seeds] for stream in LONG_STREAMS}
                    for recipe, seeds in curriculum.items()}
    mnist = {recipe: {label: [accuracy(m, stream) for m in per_scenario[scenario]]
                      for label, (scenario, stream) in SPLIT_MNIST_STREAMS.items()}
             for recipe, per_scenario in split_mnist.items()}
    (out / "meta_training_seeds.json").write_text(
        json.dumps({**results, "curriculum": long_streams, "split_mnist": mnist}, indent=1) + "\n")
    (out / "meta_training_seeds.md").write_text("\n".join([
        glyph_table(results), seeds_table(long_streams, RUNS, CURRICULUM_CAPTION),
        seeds_table(mnist, RUNS, SPLIT_MNIST_CAPTION)]))
    return [out / "meta_training_seeds.json", out / "meta_training_seeds.md"]


EXPERIMENT = Experiment(
    "meta_training_seeds",
    tuple(run for seed in SEEDS for run in seed_runs(seed)) +
    tuple(run for scenario in SCENARIOS for run in two_task_recipe_runs(scenario)),
    report=report)
