"""Split-MNIST meta-finetuning, class-incremental, of the paper's Conv-4 model: the ``acl_split_mnist_class``
recipe (1,500 steps, batch 32, constant 1e-3) started from the end of the Conv-4 length curriculum,
``runs/glyphs_conv4_24task`` (a GPU job; the experiment ``conv4_gpu`` declares the chain). This step took
about 52 min on this project's 2-core CPU (2 s per step).

    acljax train --config acl_split_mnist_class_conv4 --workdir runs/split_mnist_class_conv4
    acljax eval --model runs/split_mnist_class_conv4 --stream split_mnist_class      # 5 tasks
    acljax eval --model runs/split_mnist_class_conv4 --stream split_mnist_class2     # 2 tasks
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_conv4, acl_split_mnist_class


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_split_mnist_class.get_config(), model=acl_glyphs_conv4.MODEL,
                               init_from="runs/glyphs_conv4_24task")
