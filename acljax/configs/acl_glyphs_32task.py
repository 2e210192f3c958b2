"""One stage past the shipped length curriculum: 32-task sequences of 5-way 5-shot glyph tasks (528 terms),
meta-finetuned from the shipped 24-task model (``glyphs_24task_acl``), constant learning rate 3e-4, 1,500
steps; the objective scans over the tasks (a program that does not grow with them). Three seeds of 200
steps each, evaluated on 5-, 10- and 20-task streams: experiments/long_sequences.py.

    acljax train --config acl_glyphs_32task --workdir runs/glyphs_32task
    acljax experiment run long_sequences
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_24task
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_glyphs_24task.get_config(), tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 32,
                               init_from="glyphs_24task_acl")
