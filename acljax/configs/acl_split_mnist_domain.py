"""Split-MNIST meta-finetuning, domain-incremental (Irie et al. 2025): 5 tasks of 2-way 5-shot glyph
classes, labels {0, 1} in every task, uniform mean over the 15 terms (5 within + 10 backward),
constant learning rate 1e-3. Starts from the shipped end of the glyph length curriculum
(``glyphs_24task_acl``: 2 -> 4 -> 8 -> 16 -> 24-task sequences), a better starting point than the 2-task
model ``glyphs_2task_acl`` (``--set "init_from='glyphs_2task_acl'"``, the recipe until 2026-11-24: the
meta_training_seeds experiment);
meta-validates on 5-task sequences from MNIST's validation split (never the test set).

    acljax train --config acl_split_mnist_domain --workdir runs/split_mnist_domain
    acljax eval --model runs/split_mnist_domain --stream split_mnist_domain
"""

import dataclasses

from acljax.acl import ACLConfig, PoolConfig
from acljax.configs import acl_glyphs_quickstart
from acljax.data.episodes import TaskSpec

START_MODEL = "glyphs_24task_acl"  # a shipped model (acljax/pretrained/), found by name


def split_mnist_config(label_offsets: list[int]) -> ACLConfig:
    base = acl_glyphs_quickstart.get_config()  # the model of the checkpoint it starts from
    return dataclasses.replace(
        base,
        pools=(PoolConfig(dataset="glyphs", split="background", size=32, channels=1, validation_split="validation",
                          validation_dataset="mnist", test_split=None),),
        tasks=tuple(TaskSpec(n_way=2, k_shot=5, num_queries=2, label_offset=o) for o in label_offsets),
        task_scales=None, loss_scale=None, use_acl=True, cycle_orders=False,
        batch_size=32, steps=1500, schedule="constant", learning_rate=1e-3,  # paper: batch 64 (GPU)
        log_every=50, validate_every=250, validation_batches=8, init_from=START_MODEL, seed=0)


def get_config() -> ACLConfig:
    return split_mnist_config([0] * 5)
