"""Still longer meta-training sequences: 8-task sequences of 5-way 5-shot glyph tasks (36 terms: every
task's queries after itself and after every later task, uniform mean), constant learning rate 3e-4,
meta-finetuned from the shipped 2-task glyph ACL model. The curriculum over sequence length (2 -> 4 -> 8
tasks) starts it from the 4-task model instead:

    acljax train --config acl_glyphs_8task --workdir runs/glyphs_8task                  # 2 -> 8 tasks
    acljax train --config acl_glyphs_4task --workdir runs/glyphs_4task
    acljax train --config acl_glyphs_8task --workdir runs/glyphs_8task_curriculum \\
        --set "init_from='runs/glyphs_4task'"                                           # 2 -> 4 -> 8 tasks
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_4task
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_glyphs_4task.get_config(), tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 8)
