"""Experience replay, A-GEM (Chaudhry et al. 2019), ER-ACE (Caccia et al. 2022) and DER++ (Buzzega et al.
2020) on a fixed-size episodic memory per seed.

The buffer (:mod:`acljax.cl.replay`) is filled with each task's training examples at its end
("reservoir" or "class_balanced"); every step reads ``memory_batch`` stored examples.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from acljax.checks import is_finite_number
from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy, require_positive_ints
from acljax.cl.replay import POLICIES, agem_project, class_balanced_add, init_buffer, reservoir_add, sample_buffer


@dataclasses.dataclass(frozen=True)
class Replay(Method):
    """Current and stored examples in one batch (the stored ones scored on their own task's outputs)."""

    memory_size: int = 1000
    memory_batch: int = 128
    buffer: str = "reservoir"

    def __post_init__(self):
        if self.buffer not in POLICIES:
            raise ValueError(f"{type(self).__name__}.buffer must be one of {POLICIES}, got {self.buffer!r}")
        require_positive_ints(self, "memory_size", "memory_batch")

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


@dataclasses.dataclass(frozen=True)
class ERACE(Replay):
    """ER with the asymmetric cross-entropy: on the current batch, the outputs of earlier tasks' classes absent
    from the batch are masked out (so new classes do not push old ones down); the memory batch is scored on
    every output of its labels' tasks. Loss: mean over the current batch + mean over the memory batch.
    Caccia et al. fill the buffer during the task; here it is filled at task ends, so in class-IL nothing
    teaches that the newest task's inputs are not old classes (Split-MNIST: its last task scores 0)."""

    def loss(self, apply, params, memory, x, y, masks, key):
        present = jnp.zeros_like(masks.current).at[y].set(True)
        current = cross_entropy(apply, params, x, y, masks.current & (present | ~masks.previous)).mean()
        stored, count = self.memory_loss(apply, params, memory, masks, key)
        return current + stored / jnp.maximum(count, 1)


@dataclasses.dataclass(frozen=True)
class DERpp(Replay):
    """Dark experience replay++: the memory keeps each stored example's logits as the network gave them at the
    end of its task; loss = cross-entropy on the current batch + ``alpha`` x the mean squared error between the
    logits of one memory batch and the stored ones + ``beta`` x the cross-entropy on another memory batch.
    (Buzzega et al. store logits while training, with the buffer filled online; here the buffer is filled at
    each task's end, so the logits are the trained network's.)"""

    alpha: float = 0.2  # Buzzega et al.'s best on Seq-CIFAR-10 with 500 stored examples (their code)
    beta: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        for name in ("alpha", "beta"):
            if not is_finite_number(getattr(self, name)) or not getattr(self, name) >= 0:
                raise ValueError(f"DERpp.{name} must be a finite number >= 0, got {getattr(self, name)!r}")

    def init_memory(self, params, input_shape, num_outputs):
        buffer = super().init_memory(params, input_shape, num_outputs)
        return buffer._replace(x=(buffer.x, jnp.zeros((self.memory_size, num_outputs))))

    def loss(self, apply, params, memory, x, y, masks, key):
        logits_key, labels_key = jax.random.split(key)
        (mx, stored_logits), _, valid = sample_buffer(memory, logits_key, self.memory_batch)
        logit_error = jnp.mean((apply(params, mx) - stored_logits) ** 2, -1)
        (lx, _), ly, label_valid = sample_buffer(memory, labels_key, self.memory_batch)
        labels = cross_entropy(apply, params, lx, ly, masks.of_label[ly])
        return (cross_entropy(apply, params, x, y, masks.current).mean()
                + self.alpha * (logit_error * valid).sum() / jnp.maximum(valid.sum(), 1)
                + self.beta * (labels * label_valid).sum() / jnp.maximum(label_valid.sum(), 1))

    def end_task(self, end: TaskEnd):
        x = jnp.asarray(end.x)
        logits = jax.vmap(lambda p, m: jax.lax.map(lambda chunk: end.apply(p, m, chunk), x.reshape(
            -1, 1, *x.shape[1:]), batch_size=512).reshape(len(x), -1))(end.params, end.memory)
        add = reservoir_add if self.buffer == "reservoir" else class_balanced_add
        memory = jax.vmap(add, in_axes=(0, (None, 0), None, 0))(end.memory, (x, logits), jnp.asarray(end.y), end.keys)
        return end.opt_state, memory
