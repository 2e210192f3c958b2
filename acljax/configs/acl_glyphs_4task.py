"""Longer meta-training sequences for long task streams: the shipped 2-task glyph ACL model meta-finetuned
on 4-task sequences of 5-way 5-shot glyph tasks (the N-task ACL objective: every task's queries after
itself and after every later task, uniform mean over its 10 terms), constant learning rate 3e-4.

    acljax train --config acl_glyphs_4task --workdir runs/glyphs_4task
    acljax eval --model runs/glyphs_4task --stream split_glyphs_domain20
    acljax experiment run long_glyph_streams     # declares this run, reports it beside the shipped models
"""

import dataclasses

from acljax.acl import ACLConfig
from acljax.configs import acl_glyphs_quickstart
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    base = acl_glyphs_quickstart.get_config()  # the model of the checkpoint it starts from
    return dataclasses.replace(
        base, tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5),) * 4, task_scales=None, loss_scale=None,
        steps=1500, learning_rate=3e-4, validate_every=250, init_from="glyphs_2task_acl")
