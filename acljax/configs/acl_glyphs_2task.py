"""The paper's 2-task protocol and model on offline data: two glyph tasks per sequence, 5-way 15-shot,
one query each, an auxiliary 1-shot term per task, order swapped every step, the paper's Conv-4 model
(about 750k parameters) and optimiser (Adam 0.9/0.995/1e-9, warm-up to ~8.8e-4 over 5000 steps).
The loss is the official 0.2 x [s_A (fs_A + main_A) + s_B (fs_B + main_B) + acl_A]; with two tasks of one
data set both scales are 1 (the paper uses 0.1 on its Omniglot task).

    acljax train --config acl_glyphs_2task --workdir runs/glyphs_2task           # ACL
    acljax train --config acl_glyphs_2task --workdir runs/glyphs_2task_no_acl --no-acl

Conv-4 runs at about 12 s per step of batch 32 on a 2-core CPU, with 8.3 GB peak memory
(benchmarks/meta_step.py): this one wants a GPU.
"""

from acljax.acl import ACLConfig, ModelConfig, PoolConfig
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    task = TaskSpec(n_way=5, k_shot=15, num_queries=1, first_shot=True)
    return ACLConfig(
        pools=(PoolConfig(dataset="glyphs", split="background", size=32, channels=3, validation_fraction=0.1,
                          test_split="evaluation"),),
        tasks=(task, task), task_scales=(1.0, 1.0), loss_scale=0.2, use_acl=True, cycle_orders=True,
        model=ModelConfig(), batch_size=32, steps=100_000, schedule="warmup", warmup_steps=5000,
        log_every=100, validate_every=1000, validation_batches=16, test_batches=32, seed=0)
