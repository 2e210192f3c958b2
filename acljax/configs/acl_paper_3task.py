"""The paper's 3-task experiment (Irie et al. 2025, as their code runs it): three 5-way 15-shot tasks per
sequence from three data sets, cyclic task orders only, the 9 terms (3 first-shot, 3 within, 3 backward)
each weighted 0.11.
The third data set is any prepared one (here CIFAR-100 via TFDS; another: --set pools.2.dataset=NAME).

    acljax train --config acl_paper_3task --workdir runs/paper_3task
"""

import dataclasses

from acljax.acl import ACLConfig, PoolConfig
from acljax.configs import acl_paper_2task as two
from acljax.data.episodes import TaskSpec

THIRD = PoolConfig(dataset="cifar100", split="train", size=32, channels=3, validation_fraction=0.2,
                   test_split="test")


def get_config() -> ACLConfig:
    base = two.get_config()
    return dataclasses.replace(
        base, pools=(two.OMNIGLOT, two.MINI_IMAGENET, THIRD),
        tasks=tuple(TaskSpec(5, 15, 1, first_shot=True, pool=p) for p in range(3)),
        task_scales=(1.0, 1.0, 1.0), loss_scale=0.11, cycle_orders=True)
