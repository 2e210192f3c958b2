"""The 2-task protocol across two offline data sets, as the paper pairs Omniglot with Mini-ImageNet:
task A from held-out glyph characters, then task B from Fashion-MNIST (and the reverse order), read in
context by the shipped quickstart models with and without ACL. Meta-test only: neither model saw
Fashion-MNIST in meta-training.

    python experiments/acl_glyphs_then_fashion.py   # -> runs/acl_glyphs_then_fashion/*.{json,md}
                                                    # (--out DIR elsewhere; --record: experiments/results/)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from acljax.acl import PoolConfig
from acljax.acl.model import image_shape, load_config, load_params
from acljax.acl.pools import build_pools
from acljax.acl.quickstart import COLUMNS, PRETRAINED, VARIANTS, table
from acljax.acl.trainer import TEST_STREAM, MetaTrainer, evaluate_terms
from acljax.data.episodes import TaskSpec
from acljax.recording import add_output_arguments, output_dir

FASHION = PoolConfig(dataset="fashion_mnist", split="train", size=32, channels=1, test_split="test")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, __file__)
    out = output_dir(parser.parse_args(argv), __file__)
    results, text = {}, []
    for order, pools in (("glyphs then Fashion-MNIST", (0, 1)), ("Fashion-MNIST then glyphs", (1, 0))):
        results[order] = {}
        for label, use_acl in VARIANTS.items():
            base = load_config(PRETRAINED[use_acl])
            config = dataclasses.replace(base, pools=(base.pools[0], FASHION), test_batches=16, tasks=tuple(
                TaskSpec(5, 5, 5, pool=p) for p in pools))
            test_pools = build_pools(config, "test")
            learner = MetaTrainer(config, image_shape(config, test_pools))
            params = load_params(PRETRAINED[use_acl], learner.params)
            results[order][label] = evaluate_terms(learner, params, test_pools, TEST_STREAM, config.test_batches)
        text.append(f"### {order}\n\n" + table(results[order], 0.2).replace(
            "held-out characters", "held-out glyph characters and Fashion-MNIST test images (never seen in "
            "meta-training)"))
    (out / "acl_glyphs_then_fashion.json").write_text(json.dumps({"columns": COLUMNS, **results}, indent=1) + "\n")
    (out / "acl_glyphs_then_fashion.md").write_text("\n\n".join(text) + "\n")
    print("\n\n".join(text) + f"\n\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
