"""Split-MNIST meta-finetuning, domain-incremental, of the paper's Conv-4 model (a GPU job): the
``acl_split_mnist_domain`` recipe (1,500 steps, batch 32, constant 1e-3) started from the Conv-4 glyph model
``acl_glyphs_conv4`` trained in ``runs/glyphs_conv4`` (the experiment ``conv4_gpu`` declares the chain). About
2.5 min on an H100 shared with three other runs.

    acljax train --config acl_glyphs_conv4 --workdir runs/glyphs_conv4
    acljax train --config acl_split_mnist_domain_conv4 --workdir runs/split_mnist_domain_conv4
    acljax eval --model runs/split_mnist_domain_conv4 --stream split_mnist_domain
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_conv4, acl_split_mnist_domain


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_split_mnist_domain.get_config(), model=acl_glyphs_conv4.MODEL,
                               init_from="runs/glyphs_conv4")
