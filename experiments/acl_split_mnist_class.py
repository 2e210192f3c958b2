"""Split-MNIST meta-finetuning, class-incremental (REFERENCE §3): as the domain-incremental config,
but task t's labels are shifted by 2t over the 10-way output.

    acljax train --config experiments/acl_split_mnist_class.py --workdir runs/split_mnist_class
    acljax eval --model runs/split_mnist_class --stream split_mnist_class      # 5 tasks
    acljax eval --model runs/split_mnist_class --stream split_mnist_class2     # 2 tasks
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("domain", Path(__file__).with_name("acl_split_mnist_domain.py"))
_domain = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_domain)


def get_config():
    return _domain.split_mnist_config([2 * t for t in range(5)])
