"""The length curriculum's last stage: 24-task sequences of 5-way 5-shot glyph tasks (300 terms),
meta-finetuned from the 16-task stage's workdir (``acl_glyphs_16task``), constant learning rate 3e-4. The whole
curriculum, every stage's ``init_from`` set to the workdir of the stage before, is declared by the experiments
``meta_training_seeds`` (seeds 1 and 2, each from its own 2-task model) and ``conv4_recipe`` (the Conv-4 model);
``acljax experiment run NAME`` runs it. By hand (``init_from`` below is the 16-task stage's workdir, relative
to where the command runs):

    acljax train --config acl_glyphs_16task --workdir runs/glyphs_16task
    acljax train --config acl_glyphs_24task --workdir runs/glyphs_24task
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_16task
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return dataclasses.replace(acl_glyphs_16task.get_config(), tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 24,
                               init_from="runs/glyphs_16task")
