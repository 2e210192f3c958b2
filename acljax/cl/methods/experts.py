"""A mixture of per-task experts: one copy of the network per task, each trained only on its task.

Training task t uses expert t. Testing routes by ``routing``: "task_id" uses the task's index (task-IL
only); "confidence" infers the task, as domain- and class-IL need: every expert trained so far classifies
the input and the most confident one (highest maximum softmax probability) answers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from acljax.cl.methods.base import TaskEnd
from acljax.cl.methods.isolation import PerTaskParameters
from acljax.cl.models import Model

ROUTINGS = ("task_id", "confidence")


@dataclasses.dataclass(frozen=True)
class Experts(PerTaskParameters):
    """max_tasks: experts kept; routing: "task_id" or "confidence" (see the module)."""

    routing: str = "task_id"

    def __post_init__(self):
        super().__post_init__()
        if self.routing not in ROUTINGS:
            raise ValueError(f"Experts.routing must be one of {ROUTINGS}, got {self.routing!r}")

    @property
    def uses_task_id(self) -> bool:
        return self.routing == "task_id"

    def init_params(self, model: Model, key, input_shape, num_outputs):
        return jax.vmap(model.init)(jax.random.split(key, self.max_tasks))  # (max_tasks, ...) per leaf

    def init_memory(self, params, input_shape, num_outputs):
        return jnp.zeros(self.max_tasks, bool)  # experts trained so far

    def apply(self, model, params, memory, x, task, training):
        def expert(i):
            return model.apply(jax.tree.map(lambda p: p[i], params), x)

        if training or self.routing == "task_id":
            return expert(task)
        logits = jax.vmap(expert)(jnp.arange(self.max_tasks))  # (E, B, K)
        confidence = jnp.where(memory[:, None], jax.nn.softmax(logits, -1).max(-1), -1.0)  # (E, B)
        return jnp.take_along_axis(logits, confidence.argmax(0)[None, :, None], 0)[0]

    def added_parameters(self, model: Model, task: int) -> int:
        return 0 if task == 0 else sum(w.size for w in jax.tree.leaves(jax.eval_shape(model.init, jax.random.key(0))))

    def end_task(self, end: TaskEnd):
        opt_state, trained = super().end_task(end)
        return opt_state, trained.at[:, end.index].set(True)
