"""Per-task low-rank adaptation (LoRA, Hu et al. 2021) of a network shared across tasks.

Task 0 trains the whole network; from task 1 on it is frozen, and task t trains only its own rank-r delta
``A_t B_t`` on every weight matrix (every leaf with two or more axes, a conv kernel taken as
(kh * kw * C_in, C_out)). Testing task t applies the network plus delta t, so what task t learned never
changes afterwards (task-IL: BWT is exactly 0). The optimiser state is reset at each task end, so frozen
parameters get exactly zero updates.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from acljax.cl.methods.base import require_positive_ints
from acljax.cl.methods.isolation import PerTaskParameters
from acljax.cl.models import Model


def _is_matrix(leaf) -> bool:
    return np.ndim(leaf) >= 2


@dataclasses.dataclass(frozen=True)
class LoRA(PerTaskParameters):
    """rank: r of each delta; max_tasks: deltas kept (tasks 1..max_tasks-1 get one each)."""

    rank: int = 4

    def __post_init__(self):
        require_positive_ints(self, "rank", "max_tasks")

    def init_params(self, model: Model, key, input_shape, num_outputs):
        """{"base": the model's params, "a": per matrix (max_tasks, fan_in, r) ~ N(0, 1/fan_in) (None for
        vectors), "b": per matrix (max_tasks, r, fan_out) zeros: every delta starts at 0}."""
        base_key, delta_key = jax.random.split(key)
        base = model.init(base_key)
        leaves, treedef = jax.tree.flatten(base)
        keys = jax.random.split(delta_key, len(leaves))
        a = [jax.random.normal(k, (self.max_tasks, math.prod(w.shape[:-1]), self.rank)) / math.sqrt(
            math.prod(w.shape[:-1])) if _is_matrix(w) else None for k, w in zip(keys, leaves)]
        b = [jnp.zeros((self.max_tasks, self.rank, w.shape[-1])) if _is_matrix(w) else None for w in leaves]
        return {"base": base, "a": a, "b": b}

    def apply(self, model, params, memory, x, task, training):
        adapted = task > 0  # task 0 trains the network itself; later tasks only their deltas
        leaves, treedef = jax.tree.flatten(params["base"])

        def effective(w, a, b):
            w = jnp.where(adapted, jax.lax.stop_gradient(w), w)
            if a is None:
                return w
            return w + jnp.where(adapted, (a[task] @ b[task]).reshape(w.shape), 0.0)

        return model.apply(jax.tree.unflatten(treedef, [effective(*z) for z in zip(leaves, params["a"], params["b"])]),
                           x)

    def added_parameters(self, model: Model, task: int) -> int:
        if task == 0:
            return 0  # task 0 trains the network itself
        shapes = jax.eval_shape(model.init, jax.random.key(0))
        return sum(self.rank * (math.prod(w.shape[:-1]) + w.shape[-1]) for w in jax.tree.leaves(shapes)
                   if len(w.shape) >= 2)
