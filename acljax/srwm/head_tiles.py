"""The Mosaic GPU kernels' layout: one head per program, its fast weights transposed in a warpgroup's registers.

A program is one warpgroup (128 threads) and owns one head (one lane n of N = B * H) for the whole sequence. Its
fused matrix is held transposed, ``W^T: (E_pad, d_pad)`` in the WGMMA register tiling (64-row tiles, one warp per 16
rows, 8 floats per thread at d = 16): a column of the step (y | q | k | b) runs along the tile's rows, a row (d
entries) along its columns. Both of the step's products are plain reductions, with no transposes:

- ``read(row, W)`` (``x W``, ``(q - k) W``): sum over axis 1, within each warp (shuffles);
- ``apply(W, col)`` (``W u``, backward only): sum over axis 0, across the four warps (shared memory);
- ``outer``: a broadcast multiply-add, thread-local.

The q and k blocks of a column become rows (their softmaxes are rows) through a small shared-memory buffer, and
rows become a column (the backward's ``join``) the same way. Every block of a column starts at a multiple of 8
entries (:class:`TileShape`), so those exchanges are aligned vector accesses; padded entries stay exactly zero.

Off a GPU (tests) the same code runs in Pallas interpret mode: loads are then plain reads (``mosaic=False``);
on a GPU they carry the Mosaic GPU register layouts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

TILE_ROWS, ALIGN = 64, 8  # the WGMMA register tiling's row tile; its column tile (and 32-byte aligned blocks)
COPY_UNIT = 32  # float32 entries: a copy between global and shared memory moves a multiple of 128 bytes


@dataclasses.dataclass(frozen=True)
class TileShape:
    """Where the blocks of one head's transposed matrix live: rows ``[0, d_out)`` y, then q, k and b, each block
    starting at a multiple of 8; q and k take ``d_pad`` rows each. ``d_pad``: d up to a multiple of 8 such that a
    chunk of ``chunk`` steps' rows is copied whole (``chunk * d_pad`` a multiple of 32 entries); ``e_pad``: the
    rows up to a multiple of 64."""

    d_out: int
    d: int
    n_beta: int
    chunk: int

    @property
    def d_pad(self) -> int:
        unit = math.lcm(ALIGN, COPY_UNIT // math.gcd(self.chunk, COPY_UNIT))
        return -(-self.d // unit) * unit

    @property
    def starts(self) -> tuple[int, int, int]:
        """The first rows of q, k and b."""
        q = -(-self.d_out // ALIGN) * ALIGN
        return q, q + self.d_pad, q + 2 * self.d_pad

    @property
    def e_pad(self) -> int:
        return -(-(self.starts[2] + self.n_beta) // TILE_ROWS) * TILE_ROWS

    @property
    def sizes(self) -> tuple[int, int]:
        """(E_pad, d_pad), the transposed matrix's shape."""
        return self.e_pad, self.d_pad

    def shared_bytes(self, itemsize: int = 4) -> int:
        """Shared memory of the largest of the three kernels, the backward: a time block of four rows (x, q, k, dx)
        and three columns (b, v - vbar, dy) per step, three matrices (the chunk's end state, d(final state), d(W_0)),
        the scratch column, and Mosaic GPU's default 2 KiB for cross-warp reductions."""
        e_pad, d_pad = self.sizes
        return itemsize * (self.chunk * (4 * d_pad + 3 * e_pad) + 3 * e_pad * d_pad + e_pad) + 2048


def _mosaic_layouts():
    from jax.experimental.pallas import mosaic_gpu as plgpu

    matrix = plgpu.Layout.WGMMA
    return {"matrix": matrix, "col": matrix.reduce(1), "row": matrix.reduce(0)}


@dataclasses.dataclass(frozen=True)
class HeadTiles:
    """:class:`acljax.srwm.step.StepLayout` of one head: the matrix ``W^T (E_pad, d_pad)``, columns ``(E_pad,)``,
    rows ``(d_pad,)``, blocks where ``shape`` says; ``scratch``: a ref of ``E_pad`` entries (shared memory) through
    which columns and rows exchange entries; ``mosaic``: load with Mosaic GPU register layouts (else plain
    reads)."""

    shape: TileShape
    scratch: Any = None
    mosaic: bool = False

    def load(self, ref, index, kind: str):
        """``ref[index]`` as a ``kind`` ("matrix", "col" or "row") value."""
        if not self.mosaic:
            return ref[index]
        from jax.experimental.pallas import mosaic_gpu as plgpu

        return plgpu.load(ref, index, layout=_mosaic_layouts()[kind], optimized=False)

    def _iota(self, kind: str):
        size = self.shape.e_pad if kind == "col" else self.shape.d_pad
        if not self.mosaic:
            return jax.lax.broadcasted_iota(jnp.int32, (size,), 0)
        from jax.experimental.pallas import mosaic_gpu as plgpu

        return plgpu.broadcasted_iota(jnp.int32, (size,), 0, layout=_mosaic_layouts()[kind])

    def _spread(self, vector, axis: int):
        return jax.lax.broadcast_in_dim(vector, self.shape.sizes, (axis,))

    def read(self, row, w):
        return jnp.sum(w * self._spread(row, 1), axis=1)

    def apply(self, w, col):
        return jnp.sum(w * self._spread(col, 0), axis=0)

    def outer(self, w, row, col):
        return w + self._spread(col, 0) * self._spread(row, 1)

    def split(self, col):
        """y and b stay whole columns (the kernel stores y whole; ``rates`` picks b's entries); q and k come back as
        rows of logits, through the scratch buffer."""
        self.scratch[...] = col
        q, k = (self.load(self.scratch, _slice(start, self.shape.d_pad), "row") for start in self.shape.starts[:2])
        return col, q, k, col

    def join(self, y, q_row, k_row, b):
        q_start, k_start, b_start = self.shape.starts
        self.scratch[_slice(q_start, self.shape.d_pad)] = q_row
        self.scratch[_slice(k_start, self.shape.d_pad)] = k_row
        qk = self.load(self.scratch, ..., "col")
        index = self._iota("col")
        return jnp.where(index < q_start, y, jnp.where(index < b_start, qk, b))

    def softmax_row(self, logits):
        valid = self._iota("row") < self.shape.d
        top = jnp.max(jnp.where(valid, logits, -jnp.inf))
        e = jnp.where(valid, jnp.exp(logits - top), 0.0)
        return e / jnp.sum(e)

    def _b_entries(self, b):
        """The n_beta learning-rate entries of a column, as scalars."""
        index = self._iota("col")
        start = self.shape.starts[2]
        return [jnp.sum(jnp.where(index == start + g, b, 0.0)) for g in range(self.shape.n_beta)]

    def rates(self, b):
        entries = self._b_entries(b)
        if self.shape.n_beta == 1:
            return jnp.broadcast_to(entries[0], b.shape)
        index = self._iota("col")
        rate = entries[3]  # padded rows between blocks get a neighbour's rate: their v - vbar is 0
        for start, entry in zip(self.shape.starts[::-1], entries[2::-1]):
            rate = jnp.where(index < start, entry, rate)
        return rate

    def group_sums(self, col):
        """Per learning rate, the column's sum over the columns it sets, placed at b's entries (others 0)."""
        index = self._iota("col")
        b_start = self.shape.starts[2]
        if self.shape.n_beta == 1:
            return jnp.where(index == b_start, jnp.sum(col), 0.0)
        bounds = (0, *self.shape.starts, b_start + self.shape.n_beta)
        sums = jnp.zeros_like(col)
        for g in range(4):
            total = jnp.sum(jnp.where((index >= bounds[g]) & (index < bounds[g + 1]), col, 0.0))
            sums = jnp.where(index == b_start + g, total, sums)
        return sums

    def col_dot(self, a, b):
        return jnp.sum(a * b)

    def row_sum(self, row):
        return jnp.sum(row)


def _slice(start: int, size: int):
    from jax.experimental import pallas as pl

    return pl.ds(start, size)
