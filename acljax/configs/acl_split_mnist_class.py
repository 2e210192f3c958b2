"""Split-MNIST meta-finetuning, class-incremental (Irie et al. 2025): as the domain-incremental config,
but task t's labels are shifted by 2t over the 10-way output.

    acljax train --config acl_split_mnist_class --workdir runs/split_mnist_class
    acljax eval --model runs/split_mnist_class --stream split_mnist_class      # 5 tasks
    acljax eval --model runs/split_mnist_class --stream split_mnist_class2     # 2 tasks
"""

from acljax.acl import ACLConfig
from acljax.configs.acl_split_mnist_domain import split_mnist_config


def get_config() -> ACLConfig:
    return split_mnist_config([2 * t for t in range(5)])
