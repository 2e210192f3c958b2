"""Memory-saving SRWM implementations: chunked rematerialisation and a reversible backward.

Both pad time to a multiple of the chunk size with zero inputs after any input softmax. A zero
input is an exact no-op: q = k = softmax(0), so every update q W - k W vanishes, and y = 0.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from acljax.srwm.state import SRWMState
from acljax.srwm.step import Precision, column_learning_rates, fuse, fused_step, prepare_inputs, unfuse

DEFAULT_ANCHOR_INTERVAL = 64


def default_remat_chunk(steps: int) -> int:
    """The divisor of T nearest sqrt(T) within [sqrt(T) / 2, 2 sqrt(T)] (no padding copy), else ceil(sqrt(T))."""
    root = math.sqrt(steps)
    divisors = [c for c in range(max(1, math.ceil(root / 2)), int(2 * root) + 1) if steps % c == 0]
    return min(divisors, key=lambda c: abs(c - root)) if divisors else math.ceil(root)


def _chunked_inputs(state: SRWMState, x: jax.Array, input_softmax: bool, chunk_size: int):
    """x (B, T, H, d) -> time-major chunks (n, C, B, H, d), zero-padded to n * C steps."""
    xs = prepare_inputs(x, state.w_y.dtype, input_softmax)
    steps = xs.shape[0]
    n = math.ceil(steps / chunk_size)
    xs = jnp.pad(xs, [(0, n * chunk_size - steps)] + [(0, 0)] * 3)
    return xs.reshape(n, chunk_size, *xs.shape[1:])


def _unchunk(y: jax.Array, steps: int) -> jax.Array:
    """(n, C, B, H, e) -> (B, T, H, e)."""
    return jnp.swapaxes(y.reshape(-1, *y.shape[2:])[:steps], 0, 1)


def _scan_steps(w, xs, d_out, precision):
    """Plain scan over time-major xs (C, B, H, d); also returns what the reversible backward keeps."""

    def body(w, x_t):
        w_next, y_t, (_, k, b, diff) = fused_step(w, x_t, d_out, precision)
        return w_next, (y_t, (k, b, diff))

    return jax.lax.scan(body, w, xs)


def scan_remat_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, chunk_size: int | None = None,
                    precision: Precision = "highest"):
    """Outer scan over chunks of C steps, inner scan under ``jax.checkpoint``: the backward keeps one
    state per chunk and recomputes each chunk's steps. Default C: :func:`default_remat_chunk`."""
    steps = x.shape[1]
    chunk_size = chunk_size or default_remat_chunk(steps)
    d_out = state.d_out

    @jax.checkpoint
    def chunk(w, xc):
        w_end, (y, _) = _scan_steps(w, xc, d_out, precision)
        return w_end, y

    w_final, y = jax.lax.scan(chunk, fuse(state), _chunked_inputs(state, x, input_softmax, chunk_size))
    return _unchunk(y, steps), unfuse(w_final, d_out)


def reversible_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, chunk_size: int | None = None,
                    precision: Precision = "highest"):
    """Custom VJP that keeps only per-step vectors (k, b, v - vbar; x is the input) and one exact
    anchor state every C steps (default 64); the backward rebuilds earlier states by reverting the
    updates in reverse time, like the official CUDA kernel, restarting from an anchor every C steps."""
    steps = x.shape[1]
    w_final, y = _reversible(state.d_out, precision, fuse(state),
                             _chunked_inputs(state, x, input_softmax, chunk_size or DEFAULT_ANCHOR_INTERVAL))
    return _unchunk(y, steps), unfuse(w_final, state.d_out)


def _reversible_forward(d_out, precision, w0, xs):
    def chunk(w, xc):
        w_end, (y, kept) = _scan_steps(w, xc, d_out, precision)
        return w_end, (w, y, kept)

    w_final, (anchors, y, kept) = jax.lax.scan(chunk, w0, xs)
    return w_final, y, anchors, kept


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _reversible(d_out, precision, w0, xs):
    w_final, y, _, _ = _reversible_forward(d_out, precision, w0, xs)
    return w_final, y


def _reversible_fwd(d_out, precision, w0, xs):
    w_final, y, anchors, kept = _reversible_forward(d_out, precision, w0, xs)
    chunk_ends = jnp.concatenate([anchors[1:], w_final[None]])
    return (w_final, y), (chunk_ends, xs, kept)


def _reversible_bwd(d_out, precision, residuals, cotangents):
    chunk_ends, xs, kept = residuals
    dw_final, dy = cotangents
    d = xs.shape[-1]

    def step_back(carry, inputs):
        w, dw = carry  # the state after step t and its cotangent
        x_t, (k, b, diff), dy_t = inputs
        w_prev = w - k[..., :, None] * (column_learning_rates(b, d_out, d) * diff)[..., None, :]
        _, vjp = jax.vjp(lambda w_, x_: fused_step(w_, x_, d_out, precision)[:2], w_prev, x_t)
        dw_prev, dx_t = vjp((dw, dy_t))
        return (w_prev, dw_prev), dx_t

    def chunk_back(dw, inputs):
        w_end, xc, kept_c, dy_c = inputs
        (_, dw_start), dxc = jax.lax.scan(step_back, (w_end, dw), (xc, kept_c, dy_c), reverse=True)
        return dw_start, dxc

    dw0, dxs = jax.lax.scan(chunk_back, dw_final, (chunk_ends, xs, kept, dy), reverse=True)
    return dw0, dxs


_reversible.defvjp(_reversible_fwd, _reversible_bwd)
