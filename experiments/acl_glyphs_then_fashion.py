"""The 2-task protocol across two offline data sets, as the paper pairs Omniglot with Mini-ImageNet:
task A from held-out glyph characters, then task B from Fashion-MNIST (and the reverse order), read in
context by the shipped quickstart models with and without ACL. Meta-test only: neither model saw
Fashion-MNIST in meta-training.

    acljax experiment run acl_glyphs_then_fashion      # the meta-test: runs/acl_glyphs_then_fashion/meta_test/
    acljax experiment report acl_glyphs_then_fashion   # -> runs/acl_glyphs_then_fashion/report/*.{json,md}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from acljax.acl import PoolConfig
from acljax.acl.model import image_shape, load_config, load_params
from acljax.acl.pools import build_pools
from acljax.acl.quickstart import COLUMNS, PRETRAINED, VARIANTS, table
from acljax.acl.trainer import TEST_STREAM, MetaTrainer, evaluate_terms
from acljax.data.episodes import TaskSpec
from acljax.experiment import Experiment, Job

ORDERS = {"glyphs then Fashion-MNIST": (0, 1), "Fashion-MNIST then glyphs": (1, 0)}  # order -> pools of A, B
FASHION = PoolConfig(dataset="fashion_mnist", split="train", size=32, channels=1, test_split="test")


def meta_test(workdir: Path) -> None:
    """Both shipped quickstart models on both orders: their meta-test terms into ``workdir/meta_test.json``."""
    results = {}
    for order, pools in ORDERS.items():
        results[order] = {}
        for label, use_acl in VARIANTS.items():
            base = load_config(PRETRAINED[use_acl])
            config = dataclasses.replace(base, pools=(base.pools[0], FASHION), test_batches=16, tasks=tuple(
                TaskSpec(5, 5, 5, pool=p) for p in pools))
            test_pools = build_pools(config, "test")
            learner = MetaTrainer(config, image_shape(config, test_pools))
            params = load_params(PRETRAINED[use_acl], learner.params)
            results[order][label] = evaluate_terms(learner, params, test_pools, TEST_STREAM, config.test_batches)
    (Path(workdir) / "meta_test.json").write_text(json.dumps({"columns": COLUMNS, **results}, indent=1) + "\n")


def report(workdirs, out):
    results = json.loads((workdirs["meta_test"] / "meta_test.json").read_text())
    text = [f"### {order}\n\n" + table(results[order], 0.2).replace(
        "held-out characters", "held-out glyph characters and Fashion-MNIST test images (never seen in "
        "meta-training)") for order in ORDERS]
    (out / "acl_glyphs_then_fashion.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "acl_glyphs_then_fashion.md").write_text("\n\n".join(text) + "\n")
    return [out / "acl_glyphs_then_fashion.json", out / "acl_glyphs_then_fashion.md"]


EXPERIMENT = Experiment("acl_glyphs_then_fashion", jobs=(Job("meta_test", meta_test),), report=report)
