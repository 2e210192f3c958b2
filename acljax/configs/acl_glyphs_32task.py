"""One stage past the shipped length curriculum: 32-task sequences of 5-way 5-shot glyph tasks (528 terms),
meta-finetuned from the 24-task stage's workdir (``acl_glyphs_24task``), constant learning rate 3e-4. It
scored within the evaluation spread of the 24-task model on 5-, 10- and 20-task streams (README, long task
streams), so the curriculum stops at 24 tasks:

    acljax train --config acl_glyphs_32task --workdir runs/glyphs_32task     # about 25 min alone on 2 cores
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_24task
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_glyphs_24task.get_config(), tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 32,
                               init_from="runs/glyphs_24task")
