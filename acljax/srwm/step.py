"""One SRWM time step and its hand-derived backward, written once over row/column primitives.

A step reads the fast-weight matrix ``W: d x E`` (columns y | q | k | b, ``E = d_out + 2 d + n_beta``) with
row vectors (d entries: the input, q, k) and writes it with one rank-1 update::

    out = x W;  q, k = softmax(out_q), softmax(out_k);  b = sigmoid(out_b);  y = out_y
    diff = (q - k) W                        # v - vbar for every column, from W before the update
    delta = rates(b) * diff;  W' = W + k delta^T

:func:`step_forward` and :func:`step_backward` hold this math and its gradient; a *layout* says where rows,
columns and the matrix live: :class:`FusedLayout` (the four blocks side by side in one array ``(..., d, E)``,
used by ``scan``, ``scan_remat`` and ``reversible``) or the Pallas kernels' per-lane blocks
(``acljax.srwm.pallas``). Columns are arrays or tuples of arrays; their elementwise arithmetic is a
``jax.tree.map``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Protocol

import jax
import jax.numpy as jnp
import numpy as np

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
    """Inverse of :func:`acljax.srwm.step.fuse`."""
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


class StepLayout(Protocol):
    """Where a step's rows (d-vectors), columns (E-vectors) and matrix live, and their products."""

    def read(self, row, w): """``row W``: a column."""
    def apply(self, w, col): """``W col``: a row."""
    def outer(self, w, row, col): """``w + row col^T``."""
    def split(self, col): """The read-out's blocks: y, q logits, k logits, b logits."""
    def join(self, y, q_row, k_row, b): """The inverse of ``split``, with q and k given as rows."""
    def softmax_row(self, logits): """Softmax of a q or k block of the read-out, as a row."""
    def rates(self, b): """Per-column learning rates, to multiply a column with (``jax.tree.map``)."""
    def group_sums(self, col): """A column summed per learning rate: (n_beta,) like b."""
    def col_dot(self, a, b): """``sum_e a_e b_e``, broadcastable against a row."""
    def row_sum(self, row): """``sum_i row_i``, broadcastable against a row."""


def _cols(op, *cols):
    return jax.tree.map(op, *cols)


def step_forward(layout: StepLayout, w, x):
    """One step from the matrix before it and the input row -> (w_next, y, kept = (q, k, b, diff))."""
    y, q, k, b = layout.split(layout.read(x, w))
    q, k, b = layout.softmax_row(q), layout.softmax_row(k), jax.nn.sigmoid(b)
    diff = layout.read(q - k, w)
    delta = _cols(jnp.multiply, layout.rates(b), diff)
    return layout.outer(w, k, delta), y, (q, k, b, diff)


def step_backward(layout: StepLayout, w, x, kept, dw, dy):
    """One step backwards, by hand: from the matrix after the step ``w``, its input ``x``, the kept vectors
    (q, k, b, diff) and the cotangents of the matrix after it and of its output -> (revert, dw_update, dx), where
    the matrix before the step is ``add_outer(layout, w, *revert)`` and its cotangent
    ``add_outer(layout, dw, *dw_update)``.

    Products with the matrix before the step are taken from ``w`` (``W v = W' v - k (delta . v)``), and both
    matrices come back as low-rank updates for the caller to apply: ``reversible`` applies them from
    loop-carried arrays one step later (fused with the vectors' arithmetic, XLA would redo that arithmetic for
    every matrix entry: on a CPU the backward was about a third slower), the kernels at once."""
    q, k, b, diff = kept
    rates = layout.rates(b)
    delta = _cols(jnp.multiply, rates, diff)

    def times_w_prev(col):
        return layout.apply(w, col) - k * layout.col_dot(delta, col)

    dk = layout.apply(dw, delta)  # through the outer product's k
    d_delta = layout.read(k, dw)
    d_diff = _cols(jnp.multiply, rates, d_delta)
    db = layout.group_sums(_cols(jnp.multiply, diff, d_delta)) * b * (1 - b)  # through the sigmoid
    d_qk = times_w_prev(d_diff)
    dq, dk = d_qk, dk - d_qk
    dq = q * (dq - layout.row_sum(q * dq))  # through the softmaxes
    dk = k * (dk - layout.row_sum(k * dk))
    d_read = layout.join(dy, dq, dk, db)  # cotangent of out = x W
    dx = times_w_prev(d_read)
    return ((-k,), (delta,)), ((q - k, x), (d_diff, d_read)), dx


def add_outer(layout: StepLayout, w, rows, cols):
    """``w + sum_v outer(rows[v], cols[v])``."""
    for row, col in zip(rows, cols):
        w = layout.outer(w, row, col)
    return w


@dataclasses.dataclass(frozen=True)
class FusedLayout:
    """The fused matrix of :func:`acljax.srwm.step.fuse`, ``(..., d, E)``; rows ``(..., d)``, columns ``(..., E)``;
    products at ``precision``."""

    d_out: int
    d: int
    precision: Precision = "highest"

    def _level(self) -> Any:
        return PRECISIONS[self.precision]

    def read(self, row, w):
        return jnp.einsum("...i,...ie->...e", row, w, precision=self._level())

    def apply(self, w, col):
        return jnp.einsum("...ie,...e->...i", w, col, precision=self._level())

    def outer(self, w, row, col):
        return w + row[..., :, None] * col[..., None, :]

    def split(self, col):
        return jnp.split(col, [self.d_out, self.d_out + self.d, self.d_out + 2 * self.d], axis=-1)

    def join(self, y, q_row, k_row, b):
        return jnp.concatenate([y, q_row, k_row, b], axis=-1)

    def softmax_row(self, logits):
        return jax.nn.softmax(logits, axis=-1)

    def rates(self, b):
        return column_learning_rates(b, self.d_out, self.d)

    def group_sums(self, col):
        n_beta = col.shape[-1] - self.d_out - 2 * self.d
        if n_beta == 1:
            return col.sum(-1, keepdims=True)
        blocks = np.repeat(np.eye(n_beta, dtype=col.dtype), (self.d_out, self.d, self.d, n_beta), axis=0)
        return jnp.einsum("...e,eg->...g", col, blocks, precision=self._level())  # (E, n_beta) block indicator

    def col_dot(self, a, b):
        return (a * b).sum(-1, keepdims=True)

    def row_sum(self, row):
        return row.sum(-1, keepdims=True)


def fused_step(w: jax.Array, x: jax.Array, d_out: int, precision: Precision = "highest"):
    """:func:`step_forward` on the fused matrix: w (B, H, d, E), x (B, H, d) -> (w_next, y (B, H, d_out), kept)."""
    return step_forward(FusedLayout(d_out, w.shape[-2], precision), w, x)


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
