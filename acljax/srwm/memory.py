"""Memory-saving SRWM implementations: chunked rematerialisation and a reversible backward.

Both pad time to a multiple of the chunk size with zero inputs after any input softmax. A zero
input is an exact no-op: q = k = softmax(0), so every update q W - k W vanishes, and y = 0.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from acljax.srwm.state import SRWMState
from acljax.srwm.step import FusedLayout, Precision, add_outer, fuse, fused_step, prepare_inputs, step_backward, unfuse

DEFAULT_ANCHOR_INTERVAL = 64


def default_remat_chunk(steps: int) -> int:
    """The divisor of T nearest sqrt(T) within [sqrt(T) / 2, 2 sqrt(T)] (no padding copy), else ceil(sqrt(T))."""
    root = math.sqrt(steps)
    divisors = [c for c in range(max(1, math.ceil(root / 2)), int(2 * root) + 1) if steps % c == 0]
    return min(divisors, key=lambda c: abs(c - root)) if divisors else math.ceil(root)


def default_anchor_interval(steps: int, longest: int = 2 * DEFAULT_ANCHOR_INTERVAL) -> int:
    """Steps between anchor states (``reversible``; the Pallas kernels with ``longest`` = 64): T itself up to
    ``longest`` steps (one chunk), else the smallest divisor of T in [64, longest], else the largest in [32, 64)
    (no padding either way), else 64."""
    if steps <= longest:
        return steps
    low = DEFAULT_ANCHOR_INTERVAL // 2
    for candidate in [*range(DEFAULT_ANCHOR_INTERVAL, longest + 1), *range(DEFAULT_ANCHOR_INTERVAL - 1, low - 1, -1)]:
        if steps % candidate == 0:
            return candidate
    return DEFAULT_ANCHOR_INTERVAL


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
        w_next, y_t, kept = fused_step(w, x_t, d_out, precision)
        return w_next, (y_t, kept)

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


CACHE_SIZE_VARIABLE = "ACLJAX_L2_CACHE_BYTES"  # overrides the L2 size read from /sys (e.g. "512K", "2M", 262144)
CPU_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")


def parse_cache_size(text: str) -> int:
    """Bytes of a cache size as Linux writes it ("1024K", "2M") or a plain number of bytes; ValueError if neither."""
    text = text.strip()
    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) == 0:
        raise ValueError(f"expected a cache size such as 524288, 512K or 2M, got {text!r}")
    return int(digits) * scale


@functools.cache
def core_cache_bytes() -> int:
    """The size of one core's L2 cache: ``$ACLJAX_L2_CACHE_BYTES`` if set, else as Linux reports it, else 1 MiB.
    It picks ``reversible``'s default batch blocks on a CPU, so it changes float32 rounding (not results beyond it)."""
    if override := os.environ.get(CACHE_SIZE_VARIABLE):
        try:
            return parse_cache_size(override)
        except ValueError as e:
            raise ValueError(f"{CACHE_SIZE_VARIABLE}: {e}") from None
    for index in sorted(CPU_CACHE_DIR.glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                return parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            break
    return 1 << 20


def default_batch_block(batch: int, sequence_bytes: int, budget: int) -> int:
    """Sequences per block of ``reversible`` on a CPU: all of them if their state and cotangent
    (``sequence_bytes`` each) fit in ``budget``, else the largest divisor of ``batch`` that fits (at least 1)."""
    if batch * sequence_bytes <= budget:
        return batch
    fit = max(1, budget // sequence_bytes)
    return max(b for b in range(1, min(fit, batch) + 1) if batch % b == 0)


def reversible_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, chunk_size: int | None = None,
                    precision: Precision = "highest", batch_block: int | None = None):
    """Custom VJP in the manner of the official CUDA kernel, with O(T/C d E + C E) memory: the forward
    keeps only the state at the start of every chunk of C steps (default: :func:`default_anchor_interval`,
    about 64 steps without padding T); the backward, chunk by
    chunk in reverse, recomputes the chunk's per-step vectors (q, k, b, v - vbar) from its start state,
    then walks its steps in reverse, rebuilding each earlier state by reverting the update and applying
    the step's hand-derived gradient (:func:`acljax.srwm.step.step_backward`).

    ``batch_block`` sequences go through the whole sequence at a time (a ``lax.map`` over blocks), so that
    their state and its cotangent stay in cache. Default on a CPU: :func:`default_batch_block` with half
    a core's L2 cache as the budget (on this project's CPU, forward+backward 6-12% faster than the whole
    batch at once, benchmarks/README.md); elsewhere the whole batch."""
    batch, steps = x.shape[:2]
    chunk_size = chunk_size or default_anchor_interval(steps)
    w0 = fuse(state)
    if batch_block is None:
        sequence_bytes = 2 * math.prod(w0.shape[1:]) * w0.dtype.itemsize
        on_cpu = jax.default_backend() == "cpu"
        batch_block = default_batch_block(batch, sequence_bytes, core_cache_bytes() // 2) if on_cpu else batch

    def run_block(block):
        w0_block, x_block = block
        w_final, y = _reversible(state.d_out, precision, w0_block,
                                 _chunked_inputs(state, x_block, input_softmax, chunk_size))
        return w_final, _unchunk(y, steps)

    def split(a):  # (B, ...) -> (B / batch_block, batch_block, ...)
        return a.reshape(batch // batch_block, batch_block, *a.shape[1:])

    w_final, y = jax.lax.map(run_block, (split(w0), split(x)))
    return y.reshape(batch, *y.shape[2:]), unfuse(w_final.reshape(w0.shape), state.d_out)


def _reversible_forward(d_out, precision, w0, xs):
    """-> final state, y (n, C, B, H, d_out), the state at the start of each chunk (n, B, H, d, E)."""
    def chunk(w, xc):
        w_end, (y, _) = _scan_steps(w, xc, d_out, precision)
        return w_end, (w, y)

    w_final, (starts, y) = jax.lax.scan(chunk, w0, xs)
    return w_final, y, starts


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _reversible(d_out, precision, w0, xs):
    w_final, y, _ = _reversible_forward(d_out, precision, w0, xs)
    return w_final, y


def _reversible_fwd(d_out, precision, w0, xs):
    w_final, y, starts = _reversible_forward(d_out, precision, w0, xs)
    return (w_final, y), (starts, xs)


def _reversible_bwd(d_out, precision, residuals, cotangents):
    starts, xs = residuals
    dw_final, dy = cotangents
    layout = FusedLayout(d_out, xs.shape[-1], precision)

    def step_back(carry, inputs):
        # the state after step t + 1 and its cotangent, with step t + 1's low-rank updates still to apply
        w, dw, pending_w, pending_dw = carry
        w, dw = add_outer(layout, w, *pending_w), add_outer(layout, dw, *pending_dw)  # now after step t
        x_t, kept_t, dy_t = inputs
        revert, dw_update, dx_t = step_backward(layout, w, x_t, kept_t, dw, dy_t)
        return (w, dw, revert, dw_update), dx_t

    def chunk_back(dw, inputs):
        w_start, xc, dy_c = inputs
        w_end, (_, kept_c) = _scan_steps(w_start, xc, d_out, precision)  # this chunk's per-step vectors
        zero_row, zero_col = jnp.zeros_like(xc[0]), jnp.zeros_like(kept_c[3][0])
        nothing_pending = (w_end, dw, ((zero_row,), (zero_col,)), ((zero_row,) * 2, (zero_col,) * 2))
        (_, dw, _, last_update), dxc = jax.lax.scan(step_back, nothing_pending, (xc, kept_c, dy_c),
                                                    reverse=True)
        return add_outer(layout, dw, *last_update), dxc

    dw0, dxs = jax.lax.scan(chunk_back, dw_final, (starts, xs, dy), reverse=True)
    return dw0, dxs


_reversible.defvjp(_reversible_fwd, _reversible_bwd)
