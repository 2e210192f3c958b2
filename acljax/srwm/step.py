"""One SRWM time step on the fused fast-weight matrix, and the ``lax.scan`` implementation.

The four blocks are kept side by side in one matrix ``w: (B, H, d, E)`` with
``E = d_out + 2 d + n_beta`` (columns y | q | k | b), so a step is two batched
mat-vecs and one rank-1 update, whatever the number of blocks.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from acljax.srwm.state import SRWMState

Precision = Literal["highest", "high", "default"]
# the matmul precision of every SRWM product: "highest" is full float32 (the default, and what the tests
# compare against); "high" (bf16x3) and "default" (one bf16 pass) trade accuracy for speed on GPUs and TPUs.
# The CPU computes float32 products in full whatever is asked.
PRECISIONS = {"highest": jax.lax.Precision.HIGHEST, "high": jax.lax.Precision.HIGH,
              "default": jax.lax.Precision.DEFAULT}


def fuse(state: SRWMState) -> jax.Array:
    """(..., H, d, d_out), (..., H, d, d) x2, (..., H, d, n_beta) -> (..., H, d, E)."""
    return jnp.concatenate(list(state), axis=-1)


def unfuse(w: jax.Array, d_out: int) -> SRWMState:
    """Inverse of :func:`fuse`."""
    d = w.shape[-2]
    return SRWMState(*jnp.split(w, [d_out, d_out + d, d_out + 2 * d], axis=-1))


def column_learning_rates(b: jax.Array, d_out: int, d: int) -> jax.Array:
    """Per-column learning rate of the fused matrix: (..., n_beta) -> (..., E) or (..., 1)."""
    n_beta = b.shape[-1]
    if n_beta == 1:
        return b
    sizes = (d_out, d, d, n_beta)  # broadcasts, not jnp.repeat: XLA fuses them; repeat's gather it does not
    return jnp.concatenate([jnp.broadcast_to(b[..., i:i + 1], (*b.shape[:-1], size)) for i, size in enumerate(sizes)],
                           axis=-1)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")


def project(w: jax.Array, v: jax.Array, precision: Precision = "highest") -> jax.Array:
    """Row vectors times their matrices: v (..., d), w (..., d, E) -> (..., E)."""
    return jnp.einsum("...i,...ie->...e", v, w, precision=PRECISIONS[precision])


def fused_step(w: jax.Array, x: jax.Array, d_out: int, precision: Precision = "highest"):
    """One step. w: (B, H, d, E), x: (B, H, d), same float dtype -> (w_next, y: (B, H, d_out)).

    Also returns the per-step vectors (q, k, b, v - vbar) that a memory-saving backward needs.
    """
    d = w.shape[-2]
    out = project(w, x, precision)
    y, q, k, b = jnp.split(out, [d_out, d_out + d, d_out + 2 * d], axis=-1)
    q = jax.nn.softmax(q, axis=-1)
    k = jax.nn.softmax(k, axis=-1)
    b = jax.nn.sigmoid(b)
    diff = project(w, q - k, precision)  # v - vbar for every column, from the weights before this step
    delta = column_learning_rates(b, d_out, d) * diff
    w_next = w + k[..., :, None] * delta[..., None, :]
    return w_next, y, (q, k, b, diff)


def prepare_inputs(x: jax.Array, dtype, input_softmax: bool) -> jax.Array:
    """x: (B, T, H, d) any float dtype -> time-major (T, B, H, d) in the state's dtype."""
    x = jnp.swapaxes(x.astype(dtype), 0, 1)
    return jax.nn.softmax(x, axis=-1) if input_softmax else x


def scan_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, precision: Precision = "highest"):
    """``jax.lax.scan`` over time. state batched (B, H, ...), x: (B, T, H, d)."""
    d_out = state.d_out

    def body(w, x_t):
        w_next, y_t, _ = fused_step(w, x_t, d_out, precision)
        return w_next, y_t

    w_final, y = jax.lax.scan(body, fuse(state), prepare_inputs(x, state.w_y.dtype, input_softmax))
    return jnp.swapaxes(y, 0, 1), unfuse(w_final, d_out)


def srwm_step(state: SRWMState, x_t: jax.Array, *, input_softmax: bool = False, precision: Precision = "highest"):
    """One time step on separate blocks: state (B, H, ...), x_t: (B, H, d) -> (state', y_t (B, H, d_out)).

    Used by recurrent cells; the output has x_t's dtype, the state keeps its own (float32 or float64).
    """
    x_s = x_t.astype(state.w_y.dtype)
    if input_softmax:
        x_s = jax.nn.softmax(x_s, axis=-1)
    check_precision(precision)
    w_next, y, _ = fused_step(fuse(state), x_s, state.d_out, precision)
    return unfuse(w_next, state.d_out), y.astype(x_t.dtype)
