"""Episodic memory for replay-based continual learning: fixed-size pytree buffers and A-GEM's projection.

A buffer's arrays never change shape (``capacity`` slots plus a validity mask), so a jit-compiled
training step that reads or writes it never recompiles. Insertion is a pure function of
(buffer, examples, key).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

POLICIES = ("reservoir", "class_balanced")


class Buffer(NamedTuple):
    """x: (capacity, ...) stored inputs, or a pytree of such arrays (the inputs and what a method keeps beside
    them, e.g. DER's logits); y: (capacity,) int32 labels; valid: (capacity,) bool;
    seen: (counters,) int32 examples offered so far: one counter (reservoir) or one per class
    (class-balanced)."""

    x: jax.Array
    y: jax.Array
    valid: jax.Array
    seen: jax.Array


def init_buffer(capacity: int, example_shape: tuple[int, ...], *, num_classes: int | None = None,
                dtype=jnp.float32) -> Buffer:
    """An empty buffer; give ``num_classes`` for :func:`class_balanced_add` (``capacity // num_classes``
    slots per class), leave it None for :func:`reservoir_add`."""
    if not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    if num_classes is not None and (not isinstance(num_classes, int) or not 1 <= num_classes <= capacity):
        raise ValueError(f"num_classes must be an int in [1, capacity={capacity}] or None, got {num_classes!r}")
    return Buffer(jnp.zeros((capacity, *example_shape), dtype), jnp.zeros((capacity,), jnp.int32),
                  jnp.zeros((capacity,), bool), jnp.zeros((num_classes or 1,), jnp.int32))


def reservoir_add(buffer: Buffer, x, y: jax.Array, key: jax.Array) -> Buffer:
    """Offer examples x (n, ...) (a pytree like the buffer's x), y (n,) in order; each of the ``seen``
    examples so far stays with probability capacity / seen (Vitter's algorithm R)."""
    if buffer.seen.shape != (1,):
        raise ValueError("reservoir_add needs a buffer made with num_classes=None")
    capacity = buffer.y.shape[0]

    def offer(buf, item):
        xi, yi, ki = item
        seen = buf.seen[0]
        slot = jnp.where(seen < capacity, seen, jax.random.randint(ki, (), 0, seen + 1))
        return _store(buf, slot, slot < capacity, xi, yi, 0), None

    return _offer_all(buffer, offer, x, y, key)


def class_balanced_add(buffer: Buffer, x, y: jax.Array, key: jax.Array) -> Buffer:
    """Offer examples so that each of the buffer's ``num_classes`` classes owns ``capacity // num_classes``
    slots, filled by reservoir sampling over that class's examples. Labels must be in [0, num_classes)."""
    num_classes = buffer.seen.shape[0]
    per_class = buffer.y.shape[0] // num_classes

    def offer(buf, item):
        xi, yi, ki = item
        seen = buf.seen[yi]
        local = jnp.where(seen < per_class, seen, jax.random.randint(ki, (), 0, seen + 1))
        return _store(buf, yi * per_class + jnp.minimum(local, per_class - 1), local < per_class, xi, yi, yi), None

    return _offer_all(buffer, offer, x, y, key)


def _offer_all(buffer: Buffer, offer, x, y: jax.Array, key: jax.Array) -> Buffer:
    """Scan ``offer(buffer, (xi, yi, key_i))`` over the examples in order."""
    x = jax.tree.map(lambda new, stored: new.astype(stored.dtype), x, buffer.x)
    return jax.lax.scan(offer, buffer, (x, y.astype(jnp.int32), jax.random.split(key, y.shape[0])))[0]


def _store(buf: Buffer, slot, keep, xi, yi, counter) -> Buffer:
    """Write (xi, yi) into ``slot`` if ``keep``; count the offer on ``counter``."""
    slot = jnp.minimum(slot, buf.y.shape[0] - 1)
    return Buffer(jax.tree.map(lambda stored, new: stored.at[slot].set(jnp.where(keep, new, stored[slot])), buf.x, xi),
                  buf.y.at[slot].set(jnp.where(keep, yi, buf.y[slot])),
                  buf.valid.at[slot].set(buf.valid[slot] | keep), buf.seen.at[counter].add(1))


def sample_buffer(buffer: Buffer, key: jax.Array, n: int) -> tuple[Any, jax.Array, jax.Array]:
    """n stored examples drawn uniformly (with replacement) from the valid slots -> (x (a pytree like the
    buffer's), y, valid (n,));
    ``valid`` is all False while the buffer is empty."""
    weights = buffer.valid.astype(jnp.float32)
    any_valid = weights.sum() > 0
    idx = jax.random.choice(key, buffer.y.shape[0], (n,), p=jnp.where(any_valid, weights / jnp.maximum(
        weights.sum(), 1.0), 1.0 / buffer.y.shape[0]))
    return jax.tree.map(lambda stored: stored[idx], buffer.x), buffer.y[idx], buffer.valid[idx] & any_valid


def agem_project(grads, reference_grads):
    """A-GEM (Chaudhry et al. 2019): if g . g_ref < 0, use g - (g . g_ref / g_ref . g_ref) g_ref, else g."""
    dot = optax.tree.vdot(grads, reference_grads)
    scale = jnp.where(dot < 0, dot / jnp.maximum(optax.tree.vdot(reference_grads, reference_grads), 1e-30), 0.0)
    return optax.tree.add_scale(grads, -scale, reference_grads)
