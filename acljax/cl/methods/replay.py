"""Experience replay and A-GEM (Chaudhry et al. 2019) on a fixed-size episodic memory per seed.

The buffer (:mod:`acljax.cl.replay`) is filled with each task's training examples at its end
("reservoir" or "class_balanced"); every step reads ``memory_batch`` stored examples.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy
from acljax.cl.replay import POLICIES, agem_project, class_balanced_add, init_buffer, reservoir_add, sample_buffer


@dataclasses.dataclass(frozen=True)
class Replay(Method):
    """Current and stored examples in one batch (the stored ones scored on their own task's outputs)."""

    memory_size: int = 1000
    memory_batch: int = 128
    buffer: str = "reservoir"

    def __post_init__(self):
        if self.buffer not in POLICIES:
            raise ValueError(f"buffer must be one of {POLICIES}, got {self.buffer!r}")
        for name in ("memory_size", "memory_batch"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def init_memory(self, params, input_shape, num_outputs):
        classes = num_outputs if self.buffer == "class_balanced" else None
        return init_buffer(self.memory_size, tuple(input_shape), num_classes=classes)

    def memory_loss(self, apply, params, memory, masks: Masks, key):
        """Summed loss over the valid examples of a sampled memory batch, and their number."""
        mx, my, valid = sample_buffer(memory, key, self.memory_batch)
        return (cross_entropy(apply, params, mx, my, masks.of_label[my]) * valid).sum(), valid.sum()

    def loss(self, apply, params, memory, x, y, masks, key):
        stored, count = self.memory_loss(apply, params, memory, masks, key)
        return (cross_entropy(apply, params, x, y, masks.current).sum() + stored) / (len(y) + count)

    def end_task(self, end: TaskEnd):
        add = reservoir_add if self.buffer == "reservoir" else class_balanced_add
        memory = jax.vmap(add, in_axes=(0, None, None, 0))(end.memory, jnp.asarray(end.x), jnp.asarray(end.y),
                                                          end.keys)
        return end.opt_state, memory


@dataclasses.dataclass(frozen=True)
class AGEM(Replay):
    """The current task's gradient, projected when it conflicts with the memory batch's gradient."""

    def loss(self, apply, params, memory, x, y, masks, key):
        return Method.loss(self, apply, params, memory, x, y, masks, key)

    def adjust_gradients(self, apply, params, memory, grads, masks, key):
        reference = jax.grad(lambda p: self.memory_loss(apply, p, memory, masks, key)[0])(params)
        return agem_project(grads, reference)
