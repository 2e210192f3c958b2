"""The paper's Conv-4 model, meta-trained on a GPU: every run from scratch, and Split-MNIST with error bars.

The runs (2026-11-24, one NVIDIA H100 through this project's device tool, jax/jaxlib 0.11.2, flax 0.12.10,
the Pallas SRWM kernels (`impl="auto"`); 3 or 4 runs sharing the GPU, 16 CPU cores; about 28 min of GPU time
for everything): the 2-task glyph quickstart task with a Conv-4 encoder, 5000 steps, in two sizes:
the quickstart's SRWM sizes (D = 128, 8 heads, feed-forward 256; `acl_glyphs_quickstart --set
model.encoder='conv4'`) and the paper's (`acl_glyphs_conv4`: D = 256, 16 heads, feed-forward 512), seeds
0, 1, 2, and the paper's sizes at learning rate 3e-4 for seeds 1 and 2. Each paper-sized run of learning rate
1e-3 was meta-finetuned on Split-MNIST from its best parameters (`acl_split_mnist_{domain,class}_conv4`).
Seed 0 also went through the length curriculum (2 -> 4 -> 8 -> 16 -> 24 tasks) and, on this project's 2-core
CPU (about 52 min), class-IL Split-MNIST from its 24-task model. Every run checkpointed every 250 steps (it
changes no number).

    acljax experiment run conv4_gpu --dry-run
    acljax experiment run conv4_gpu
    acljax experiment report conv4_gpu       # -> runs/conv4_gpu/report/

The report reads each glyph run's meta-test terms (results.json), recomputes them on the machine it runs on, and
evaluates the paper-sized Split-MNIST models (10 evaluation runs each; entries of an earlier report in the same
folder are kept while the model's best step is unchanged). The recorded report came from workdirs made before
experiments were declared, by ``acljax train`` commands that this graph declares run for run, under the same
names: ``--root runs``.
"""

import json

from acljax.acl.model import image_shape, load_config, load_params
from acljax.acl.pools import build_pools
from acljax.acl.trainer import TEST_STREAM, MetaTrainer, evaluate_terms
from acljax.experiment import Experiment, Run, chain
from acljax.pretrained import model_dir
from acljax.results import (
    SPLIT_MNIST_STREAMS,
    TERMS,
    accuracy_table,
    median_step_seconds,
    meta_test_terms,
    seeds_table,
    stream_accuracy,
)

SAVE = ("checkpoint_every=250",)
CONV4 = ("model.encoder='conv4'", "model.num_features=256", "model.num_heads=16", "model.hidden_features=512")
FROM_SCRATCH = {  # variant -> {seed: (its 2-task glyph run, config, overrides)}
    "Conv-4, D = 128 (quickstart sizes), lr 1e-3": {
        s: (f"conv4_d128_seed{s}/glyphs_2task", "acl_glyphs_quickstart", ("model.encoder='conv4'",)) for s in range(3)},
    "Conv-4, D = 256 (paper sizes), lr 1e-3": {
        s: (f"conv4_d256_seed{s}/glyphs_2task", "acl_glyphs_conv4", ()) for s in range(3)},
    "Conv-4, D = 256 (paper sizes), lr 3e-4": {
        s: (f"conv4_d256_lr3e-4_seed{s}/glyphs_2task", "acl_glyphs_conv4", ("learning_rate=3e-4",)) for s in (1, 2)},
}
CURRICULUM = (4, 8, 16, 24)  # seed 0's stages after its 2-task run
CHANCE = 20.0  # 5-way tasks
RUNS = 10  # evaluation runs per Split-MNIST stream
SPLIT_MNIST = {  # recipe -> scenario -> the runs of its seeds
    "Conv-4 D = 256, from its 2-task glyph model": {
        scenario: [f"conv4_d256_seed{s}/split_mnist_{scenario}" for s in range(3)] for scenario in ("domain", "class")},
    "Conv-4 D = 256, from its 24-task curriculum model": {"class": ["conv4_d256_seed0/split_mnist_class_from24"]},
}
SPLIT_MNIST_CAPTION = (
    "ACC (%) of the paper-sized Conv-4 ACL models meta-finetuned on Split-MNIST, each seed from the 2-task glyph "
    "model of the same seed (seeds 1 and 2 never left chance there: the table above), or, seed 0 only, from its "
    "24-task curriculum model; 5 demos per class, every test image of every task.")


LONG_STREAMS = ("split_glyphs_domain5", "split_glyphs_domain10", "split_glyphs_domain20")
LONG_STREAMS_CAPTION = (
    "\n\nACC (%) of seed 0's length curriculum (the model meta-trained on 2, then 4, 8, 16, 24-task sequences) on "
    "N-task domain-incremental streams of held-out glyph characters, 5 demos per class; mean ± std over 10 "
    "evaluation runs. The paper's Split-Omniglot figures: 92.3 / 82.0 / 67.6.\n")


def declared_runs() -> list[Run]:
    runs = [Run(name, config, (f"seed={seed}", *overrides, *SAVE))
            for per_seed in FROM_SCRATCH.values() for seed, (name, config, overrides) in per_seed.items()]
    for seed in range(3):
        runs += [Run(f"conv4_d256_seed{seed}/split_mnist_{scenario}", f"acl_split_mnist_{scenario}_conv4",
                     (f"seed={seed}", *SAVE), after=f"conv4_d256_seed{seed}/glyphs_2task")
                 for scenario in ("domain", "class")]
    stages = [(f"conv4_d256_seed0/glyphs_{tasks}task", f"acl_glyphs_{tasks}task") for tasks in CURRICULUM]
    curriculum = chain(stages, (*CONV4, *SAVE), after="conv4_d256_seed0/glyphs_2task")
    return [*runs, *curriculum, Run("conv4_d256_seed0/split_mnist_class_from24", "acl_split_mnist_class_conv4", SAVE,
                                    after=curriculum[-1].name)]


def run_row(variant: str, seed: int, workdir) -> dict:
    """A glyph run's meta-test terms (%), whether it left chance, and its median logged seconds per step."""
    terms = meta_test_terms(workdir)
    return {"variant": variant, "seed": seed, "model": str(workdir), **terms,
            "learned": min(terms.values()) > CHANCE + 10, "sec_per_step": median_step_seconds(workdir)}


def recomputed_here(workdir) -> dict:
    """The run's meta-test (the same fixed episodes as its results.json) recomputed on this machine, with the SRWM
    implementation ``impl="auto"`` picks here: the GPU's numbers came from the Pallas kernels."""
    config = load_config(workdir)
    pools = build_pools(config, "test", progress=False)
    learner = MetaTrainer(config, image_shape(config, pools))
    here = evaluate_terms(learner, load_params(workdir, learner.params), pools, TEST_STREAM, config.test_batches)
    gpu = json.loads((model_dir(workdir) / "results.json").read_text())["test"]
    return {"model": str(workdir), "loss GPU": gpu["loss"], "loss here": here["loss"],
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


def evaluations(workdirs: dict, previous: dict):
    """-> accuracy(run, stream): stream_accuracy of a run's model as an entry; entries of ``previous`` (an earlier
    report's JSON) are kept while their model's best step is unchanged: a report again evaluates only what changed."""
    kept = {(r["model"], r["stream"], r["runs"], r["best_step"]): r for r in _entries(previous)}

    def accuracy(run: str, stream: str) -> dict:
        model = workdirs[run]
        key = (str(model), stream, RUNS, json.loads((model_dir(model) / "best.json").read_text())["step"])
        return kept.get(key) or {"model": key[0], **stream_accuracy(model, stream, runs=RUNS), "stream": stream,
                                 "runs": RUNS, "best_step": key[3]}

    return accuracy


def _entries(tree):
    if isinstance(tree, dict) and "best_step" in tree:
        yield tree
    elif isinstance(tree, dict | list):
        for value in tree.values() if isinstance(tree, dict) else tree:
            yield from _entries(value)


def split_mnist_results(accuracy) -> dict:
    """recipe -> stream label -> one entry per seed."""
    return {recipe: {label: [accuracy(run, stream) for run in runs[scenario]]
                     for label, (scenario, stream) in SPLIT_MNIST_STREAMS.items() if scenario in runs}
            for recipe, runs in SPLIT_MNIST.items()}


def long_stream_results(accuracy) -> dict:
    """seed 0's curriculum stage -> glyph stream -> entry."""
    return {f"{tasks} tasks": {stream: accuracy(f"conv4_d256_seed0/glyphs_{tasks}task", stream)
                               for stream in LONG_STREAMS} for tasks in (2, *CURRICULUM)}


def report(workdirs, out):
    rows = [run_row(variant, seed, workdirs[name]) for variant, per_seed in FROM_SCRATCH.items()
            for seed, (name, _, _) in per_seed.items()]
    recomputed = [recomputed_here(workdirs[name]) for per_seed in FROM_SCRATCH.values()
                  for name, _, _ in per_seed.values()]
    path = out / "conv4_gpu.json"
    accuracy = evaluations(workdirs, json.loads(path.read_text()) if path.exists() else {})
    split_mnist, long_streams = split_mnist_results(accuracy), long_stream_results(accuracy)
    path.write_text(json.dumps({"from_scratch": rows, "recomputed": recomputed, "split_mnist": split_mnist,
                                "long_streams": long_streams}, indent=1) + "\n")
    (out / "conv4_gpu.md").write_text("\n".join([
        from_scratch_table(rows), recomputed_table(recomputed), seeds_table(split_mnist, RUNS, SPLIT_MNIST_CAPTION),
        accuracy_table(long_streams, list(LONG_STREAMS), {}) + LONG_STREAMS_CAPTION]))
    return [path, out / "conv4_gpu.md"]


EXPERIMENT = Experiment("conv4_gpu", tuple(declared_runs()), report=report)
