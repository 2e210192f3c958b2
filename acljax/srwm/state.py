"""The SRWM fast-weight state per head: w_y (d, d_out), w_q (d, d), w_k (d, d), w_b (d, n_beta); and its
initialisation (the ACL code's)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Order of the per-block learning rates produced by ``w_b`` when ``n_beta == 4``.
BLOCKS = ("w_y", "w_q", "w_k", "w_b")


class SRWMState(NamedTuple):
    """Fast weights of a self-referential weight matrix, row-vector convention (out = x @ w).

    Leading dims absent (``w_y: (H, d, d_out)``) means one W_0 shared by every sequence;
    present (``w_y: (B, H, d, d_out)``) means a per-sequence carried state.

    Attributes:
      w_y: (..., H, d, d_out) produces the output y.
      w_q: (..., H, d, d) produces the query q.
      w_k: (..., H, d, d) produces the key k.
      w_b: (..., H, d, n_beta) produces the learning rate(s) b.
    """

    w_y: jax.Array
    w_q: jax.Array
    w_k: jax.Array
    w_b: jax.Array

    @property
    def num_heads(self) -> int:
        return self.w_q.shape[-3]

    @property
    def head_dim(self) -> int:
        return self.w_q.shape[-1]

    @property
    def d_out(self) -> int:
        return self.w_y.shape[-1]

    @property
    def n_beta(self) -> int:
        return self.w_b.shape[-1]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.w_q.shape[:-3]


def init_state(
    key: jax.Array,
    num_heads: int,
    head_dim: int,
    *,
    d_out: int | None = None,
    n_beta: int = 4,
    init_scale: float = 1.0,
    q_init_scale: float = 0.01,
    beta_init: float = 0.0,
    dtype=jnp.float32,
) -> SRWMState:
    """The ACL code's "better init": w_y, w_k ~ N(0, s/sqrt(d)), w_q ~ N(0, s_q/sqrt(d)),
    w_b ~ N(beta_init, s/sqrt(d)) (standard deviations).

    Returns an unbatched state: w_y (H, d, d_out), w_q/w_k (H, d, d), w_b (H, d, n_beta).
    """
    for name, value in (("num_heads", num_heads), ("head_dim", head_dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    d_out = head_dim if d_out is None else d_out
    if not isinstance(d_out, int) or d_out < 1:
        raise ValueError(f"d_out must be a positive int or None, got {d_out!r}")
    if n_beta not in (1, 4):
        raise ValueError(f"n_beta must be 1 (one shared learning rate) or 4 (one per block), got {n_beta!r}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}")
    std = init_scale / head_dim**0.5
    k_y, k_q, k_k, k_b = jax.random.split(key, 4)

    def normal(k, shape, scale, mean=0.0):
        return (mean + scale * jax.random.normal(k, (num_heads, head_dim, *shape), jnp.float32)).astype(dtype)

    return SRWMState(
        w_y=normal(k_y, (d_out,), std),
        w_q=normal(k_q, (head_dim,), q_init_scale / head_dim**0.5),
        w_k=normal(k_k, (head_dim,), std),
        w_b=normal(k_b, (n_beta,), std, mean=beta_init),
    )


def broadcast_state(state: SRWMState, batch_size: int) -> SRWMState:
    """Give a shared (unbatched) state a leading batch dim; a batched state is returned as is."""
    if state.batch_shape:
        return state
    return SRWMState(*(jnp.broadcast_to(w, (batch_size, *w.shape)) for w in state))


STATE_GRADIENTS = ("exact", "official")


def continue_from(state: SRWMState, w0: SRWMState, state_gradient: str = "exact") -> SRWMState:
    """The state a segment starts from when it continues a carried ``state``.

    "exact": the state as is. "official": the ACL code's ``(W - stop_gradient(W_0)) + W_0``: the same
    values, with an extra identity path from the segment to W_0's gradient.
    """
    if state_gradient not in STATE_GRADIENTS:
        raise ValueError(f"state_gradient must be one of {STATE_GRADIENTS}, got {state_gradient!r}")
    if state_gradient == "exact":
        return state
    return SRWMState(*(s + w - jax.lax.stop_gradient(w) for s, w in zip(state, w0)))
