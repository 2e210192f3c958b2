"""The length curriculum continued: 16-task sequences of 5-way 5-shot glyph tasks (136 terms: every
task's queries after itself and after every later task, uniform mean), constant learning rate 3e-4,
meta-finetuned from the shipped 8-task curriculum model (2 -> 4 -> 8 tasks). Then 24 tasks:

    acljax train --config acl_glyphs_16task --workdir runs/glyphs_16task       # 8 -> 16 tasks, about 9 min
    acljax train --config acl_glyphs_24task --workdir runs/glyphs_24task       # 16 -> 24 tasks, about 15 min
    acljax eval --model runs/glyphs_24task --stream split_glyphs_domain20
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_8task
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_glyphs_8task.get_config(), tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 16,
                               init_from="glyphs_8task_acl")
