"""The quickstart: the paper's central effect on offline data, on a CPU, in minutes.

Two in-context learners read glyph task A (5-way 5-shot), then task B. One is meta-trained with the
ACL objective, one without its backward term. Both continue meta-training (``steps``, shown live) from
the checkpoints shipped in ``acljax/pretrained/`` (or start from scratch), then are meta-tested on
held-out glyph alphabets' characters. Without ACL, task A's accuracy collapses once B is learned in context.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from acljax.acl.config import ACLConfig
from acljax.acl.model import image_shape, load_params
from acljax.acl.objective import term_label
from acljax.acl.plots import fast_weight_evolution, term_bars, term_curves
from acljax.acl.pools import build_pools
from acljax.acl.trainer import TEST_STREAM, MetaTrainer, meta_train, sample
from acljax.pretrained import PRETRAINED_DIR

CONFIG = "acl_glyphs_quickstart"  # in acljax.configs
PRETRAINED = {True: PRETRAINED_DIR / "glyphs_2task_acl", False: PRETRAINED_DIR / "glyphs_2task_no_acl"}
VARIANTS = {"ACL": True, "no ACL": False}
COLUMNS = {f"acc/{term}": term_label(term) for term in ("within_0", "within_1", "backward_0_after_1")}


def table(results: dict[str, dict[str, float]], chance: float) -> str:
    head = "| model | " + " | ".join(COLUMNS.values()) + " | forgetting of A |\n|---|" + "---|" * (len(COLUMNS) + 1)
    rows = [f"| {label} | " + " | ".join(f"{100 * m[k]:.1f}" for k in COLUMNS) +
            f" | {100 * (m['acc/within_0'] - m['acc/backward_0_after_1']):.1f} |" for label, m in results.items()]
    return "\n".join([head, *rows, f"\nQuery accuracy (%) on held-out characters; chance {100 * chance:.0f}."])


def variant_config(base: ACLConfig, use_acl: bool, steps: int, from_scratch: bool = False) -> ACLConfig:
    """``base`` as one variant of the quickstart: with or without the ACL term, ``steps`` steps (validated once,
    at the end) from that variant's shipped checkpoint, or from scratch."""
    init = None if from_scratch else PRETRAINED[use_acl]
    if init is not None and not (init / "best").is_dir():
        raise FileNotFoundError(f"pretrained checkpoint {init} is missing; run with --from-scratch")
    return dataclasses.replace(base, use_acl=use_acl, steps=steps, validate_every=steps, log_every=curve_interval(base,
                               steps), init_from=None if init is None else str(init))


def curve_interval(base: ACLConfig, steps: int) -> int:
    """Steps between logged points of the run's curves: about 30 points (at most every step), the base's own
    interval when that is finer, and a divisor of its ``checkpoint_every``."""
    every = min(base.log_every, max(1, steps // 30))
    while base.checkpoint_every is not None and base.checkpoint_every % every:
        every -= 1
    return every


def run(base: ACLConfig, workdir: str | Path, *, steps: int, from_scratch: bool = False,
        progress: bool = True) -> dict:
    """Meta-train both variants into ``workdir/acl`` and ``workdir/no_acl``, meta-test them, write
    ``summary.json``, ``summary.md`` and plots into ``workdir`` (:func:`summarize`); returns the summary."""
    workdir = Path(workdir)
    runs = {}
    for label, use_acl in VARIANTS.items():
        config = variant_config(base, use_acl, steps, from_scratch)
        runs[label] = workdir / ("acl" if use_acl else "no_acl")
        print(f"\n{label}: meta-training {steps} steps" + (f" from the shipped {PRETRAINED[use_acl].name}"
                                                          if config.init_from else " from scratch"))
        meta_train(config, runs[label], progress=progress)
    return summarize(base, runs, workdir, steps=steps, from_scratch=from_scratch)


def summarize(base: ACLConfig, runs: dict[str, Path], out: Path, *, steps: int, from_scratch: bool = False) -> dict:
    """From the variants' workdirs (``{"ACL": ..., "no ACL": ...}``, each meta-tested in its results.json):
    ``summary.json``, ``summary.md`` and the plots into ``out``; returns the summary."""
    files = {label: json.loads((Path(run) / "results.json").read_text()) for label, run in runs.items()}
    results = {label: file["test"] for label, file in files.items()}
    errors = {label: file.get("test_standard_error", {}) for label, file in files.items()}
    chance = 1 / base.tasks[0].n_way
    summary = {"steps": steps, "from": "scratch" if from_scratch else {k: str(PRETRAINED[v]) for k, v in
                                                                       VARIANTS.items()},
               "chance": chance, "test": results, "test_standard_error": errors, "table": table(results, chance)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(summary["table"] + "\n")
    term_curves(runs, out / "meta_training_terms.png", "this run's meta-training terms")
    if not from_scratch:
        term_curves({k: PRETRAINED[v] for k, v in VARIANTS.items()}, out / "pretraining_terms.png",
                    "meta-training terms of the shipped checkpoints (the paper's Fig. 2 effect)")
    term_bars(results, COLUMNS, out / "accuracy.png", chance, "held-out glyph tasks: A, then B in context",
              errors=errors, error_caption=f"error bars: ±1 standard error over {base.test_batches} test batches")
    plot_fast_weights(dataclasses.replace(base, use_acl=True), runs["ACL"], out / "fast_weights.png")
    return summary


def plot_fast_weights(config: ACLConfig, run_dir: Path, out: Path) -> Path:
    pools = build_pools(config, "test")
    trainer = MetaTrainer(config, image_shape(config, pools))
    params = load_params(run_dir, trainer.params)
    (images, feedback, _), _ = sample(config, pools, np.random.default_rng([config.seed, TEST_STREAM]), [0, 1], 1)
    model = trainer.model(params, trainer.rest, train=False)
    return fast_weight_evolution(model, trainer.objectives[0], images, feedback, out,
                                 title="ACL model, block 0 head 0: W_y at the start and each task's change")
