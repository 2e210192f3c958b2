"""The paper's 2-task experiment (Irie et al. 2025, as their code runs it): one Omniglot and one Mini-ImageNet
5-way 15-shot task per sequence, one query per task, auxiliary 1-shot terms, order swapped every step, loss
0.2 x [0.1 (fs_O + main_O) + (fs_M + main_M) + acl_first], Conv-4 model, warm-up Adam, batch 32,
about 476k steps (GPU).

Needs both data sets prepared (neither can be downloaded here; `acljax data list` says how):
    acljax data prepare omniglot --from TFDS_DATA_DIR
    acljax data prepare mini_imagenet --from mini_imagenet.npz   # x, y (train classes) + x_test, y_test
    acljax train --config acl_paper_2task --workdir runs/paper_2task
"""

from acljax.acl import ACLConfig, ModelConfig, PoolConfig
from acljax.data.episodes import TaskSpec

OMNIGLOT = PoolConfig(dataset="omniglot", split="train", size=32, channels=3, rotations=True,
                      validation_fraction=172 / 1200, test_split="test")
MINI_IMAGENET = PoolConfig(dataset="mini_imagenet", split="train", size=32, channels=3,
                           validation_fraction=16 / 80, test_split="test")


def get_config() -> ACLConfig:
    return ACLConfig(
        pools=(OMNIGLOT, MINI_IMAGENET),
        tasks=(TaskSpec(5, 15, 1, first_shot=True, pool=0), TaskSpec(5, 15, 1, first_shot=True, pool=1)),
        task_scales=(0.1, 1.0), loss_scale=0.2, use_acl=True, cycle_orders=True,
        model=ModelConfig(), batch_size=32, steps=476_000, schedule="warmup", warmup_steps=5000,
        log_every=100, validate_every=5000, validation_batches=32, test_batches=64, seed=0)
