"""Learning without Forgetting (Li & Hoiem 2017): distil the previous model's outputs on the new data."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from acljax.checks import is_finite_number
from acljax.cl.methods.base import Method, TaskEnd, cross_entropy, masked


@dataclasses.dataclass(frozen=True)
class LwF(Method):
    """Loss: cross-entropy + ``strength * t^2 * KL(teacher || student)`` at temperature ``t`` on the earlier
    tasks' outputs; the teacher is the model at the last task end (memory: teacher params, weight)."""

    strength: float = 1.0
    temperature: float = 2.0

    def __post_init__(self):
        if not is_finite_number(self.strength) or not self.strength > 0:
            raise ValueError(f"LwF.strength (the distillation weight) must be a finite number > 0, got "
                             f"{self.strength!r}")
        if not is_finite_number(self.temperature) or not self.temperature > 0:
            raise ValueError(f"LwF.temperature must be a finite number > 0, got {self.temperature!r}")

    def init_memory(self, params, input_shape, num_outputs):
        return params, jnp.zeros(())  # no teacher during the first task: weight 0

    def loss(self, apply, params, memory, x, y, masks, key):
        teacher, weight = memory
        t = self.temperature
        old = jax.nn.log_softmax(masked(apply(teacher, x), masks.previous) / t)
        new = jax.nn.log_softmax(masked(apply(params, x), masks.previous) / t)
        distill = jnp.mean(jnp.sum(jnp.exp(old) * (old - new), -1))
        return cross_entropy(apply, params, x, y, masks.current).mean() + weight * t**2 * distill

    def end_task(self, end: TaskEnd):
        return end.opt_state, (end.params, jnp.full(len(end.seeds), self.strength, jnp.float32))
