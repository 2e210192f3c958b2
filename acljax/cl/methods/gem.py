"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017): one memory per earlier task, and a gradient step
that may not increase any of their losses.

Each step computes the gradient g_k of every stored task's loss on its whole memory; if the current
gradient g conflicts with one (g . g_k < 0), it is replaced by the closest vector z with z . g_k >= 0 for
every k, found through the dual QP ``min_v 0.5 v^T (G G^T + ridge I) v + (G g)^T v, v >= margin``,
``z = G^T v + g`` (G: the rows g_k). ``margin`` > 0 is the official code's "memory strength", which asks
for a positive step on the old tasks; Hsu et al. used 0.5 with SGD at 0.01.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from acljax.checks import is_finite_number
from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy, require_positive_ints
from acljax.cl.qp import nonnegative_qp

RIDGE = 1e-3  # added to G G^T, as in the official code: keeps the dual well posed when memories agree


class TaskMemories(NamedTuple):
    """x: (max_tasks, per_task, \\*input_shape); y: (max_tasks, per_task); valid: (max_tasks, per_task) bool."""

    x: jax.Array
    y: jax.Array
    valid: jax.Array


def gem_project(grads, memory_grads, active: jax.Array, margin: float = 0.0):
    """grads: a pytree; memory_grads: the same pytree with a leading task axis (t, ...); active (t,) bool:
    the tasks that constrain. -> grads unchanged if no active constraint is violated, else the GEM projection
    (every active z . g_k >= 0 up to the QP's tolerance, more when margin > 0)."""
    g, unravel = ravel_pytree(grads)
    rows = jax.vmap(lambda tree: ravel_pytree(tree)[0])(memory_grads) * active[:, None]  # (t, P)
    dots = rows @ g
    gram = rows @ rows.T + RIDGE * jnp.eye(len(rows), dtype=g.dtype)
    floor = margin * active  # v >= floor; v = floor + u with u >= 0
    u = nonnegative_qp(gram, dots + gram @ floor)
    projected = rows.T @ (u + floor) + g
    return unravel(jnp.where(jnp.any(active & (dots < 0)), projected, g))


@dataclasses.dataclass(frozen=True)
class GEM(Method):
    """``memory_size`` examples in all, ``memory_size // max_tasks`` kept from each task (drawn at its end);
    ``max_tasks``: the longest stream it can learn."""

    memory_size: int = 1000
    max_tasks: int = 10
    margin: float = 0.5

    def __post_init__(self):
        require_positive_ints(self, "memory_size", "max_tasks")
        if self.memory_size < self.max_tasks:
            raise ValueError(f"GEM.memory_size ({self.memory_size}) must be >= GEM.max_tasks ({self.max_tasks}): at "
                             "least one stored example per task")
        if not is_finite_number(self.margin) or not self.margin >= 0:
            raise ValueError(f"GEM.margin must be a finite number >= 0, got {self.margin!r}")

    @property
    def per_task(self) -> int:
        return self.memory_size // self.max_tasks

    def init_memory(self, params, input_shape, num_outputs):
        shape = (self.max_tasks, self.per_task)
        return TaskMemories(jnp.zeros((*shape, *input_shape)), jnp.zeros(shape, jnp.int32), jnp.zeros(shape, bool))

    def adjust_gradients(self, apply, params, memory: TaskMemories, grads, masks: Masks, key):
        def task_loss(p, x, y, valid):  # mean over the task's stored examples, each on its own task's outputs
            losses = cross_entropy(apply, p, x, y, masks.of_label[y])
            return (losses * valid).sum() / jnp.maximum(valid.sum(), 1)

        memory_grads = jax.vmap(jax.grad(task_loss), in_axes=(None, 0, 0, 0))(params, *memory)
        return gem_project(grads, memory_grads, memory.valid.any(-1), self.margin)

    def end_task(self, end: TaskEnd):
        if end.index >= self.max_tasks:
            raise ValueError(f"GEM keeps memories for max_tasks={self.max_tasks} tasks and task {end.index} is "
                             f"number {end.index + 1}: raise GEM.max_tasks (--set method.max_tasks=N)")
        count = min(self.per_task, len(end.y))
        x, y = jnp.asarray(end.x), jnp.asarray(end.y)

        def store(memory: TaskMemories, key):
            pick = jax.random.permutation(key, len(y))[:count]
            pad = [(0, self.per_task - count)]
            return TaskMemories(memory.x.at[end.index].set(jnp.pad(x[pick], pad + [(0, 0)] * (x.ndim - 1))),
                                memory.y.at[end.index].set(jnp.pad(y[pick], pad)),
                                memory.valid.at[end.index].set(jnp.arange(self.per_task) < count))

        return end.opt_state, jax.vmap(store)(end.memory, end.keys)
