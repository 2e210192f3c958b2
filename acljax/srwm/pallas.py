"""Pallas SRWM kernels (``impl="pallas"``): forward and a reversible backward for GPUs and TPUs, three backends.

Every (batch row, head) pair is one lane n of N = B * H; lanes are independent recurrences. Each backend keeps
its own arrays and grid (a *geometry*) and runs the same three kernel bodies (below) on its own
:class:`acljax.srwm.step.StepLayout`:

- **TPU** (Mosaic TPU): lanes last. A state block X of the fused step is ``(d, e_X, N)`` (rows, columns, lanes),
  inputs ``(T, d, 1, N)``; a program owns up to 128 lanes (one vreg row) and every product is an elementwise
  multiply and a reduction over rows or columns (``_LaneBlocks``). Grid (N / 128, T / C), time "arbitrary": the
  state is carried in the resident output block across time blocks of C steps, inputs stream in per block.
- **Triton** (Pallas' Triton backend: CUDA GPUs since Ampere, and ROCm): the same lanes-last arrays and body, G
  lanes per program (:class:`GPULayout`), each program looping over all T steps; d and d_out padded up to powers
  of two (masked / exact no-op). Pallas' Triton backend is deprecated from JAX 0.11.
- **Mosaic GPU** (Hopper, data-centre Blackwell): one head per program (one warpgroup), lanes leading: the fused state
  transposed ``(N, E_pad, d_pad)`` in the WGMMA register tiling, inputs ``(T, N, d_pad)``, outputs y as whole
  columns ``(T, N, E_pad)`` (:mod:`acljax.srwm.head_tiles`: both products are plain reductions, no transposes).
  A ``plgpu.kernel`` (``pallas_call`` is deprecated for Mosaic GPU) with one program per head; inside it,
  ``plgpu.emit_pipeline`` walks time in blocks of C steps like the TPU grid, copying each block's inputs in and
  outputs out (the same blocks ``pallas_call`` takes in interpret mode).

Which runs where: :func:`pallas_impl` picks by the platform being compiled for (TPU: Mosaic TPU; CUDA: the
``gpu_layout``'s kernel, by default :func:`default_gpu_layout`, Mosaic GPU on compute capability 9.x and 10.x; ROCm:
Triton); ``impl="auto"`` (:func:`acljax.srwm.api.resolve_impl`) decides whether the kernels run at all.

The step and its backward are :func:`acljax.srwm.step.step_forward` / :func:`~acljax.srwm.step.step_backward`, the
same code ``reversible`` runs. So is the residual policy (``jax.custom_vjp``): the forward keeps only the state at
the start of every chunk of C steps (default: ``reversible``'s anchor rule with C at most 64: a time block holds one
chunk of every per-step array on-chip); the backward first recomputes each chunk's per-step vectors (q, k, b,
v - vbar) and end state from its anchor, every chunk in its own program (grid (lane blocks, T / C), both axes
parallel), then walks time in reverse, reverting each update on-chip from the chunk's end state and applying the
step's hand-derived gradient. Between forward and backward a layer holds O(T / C) states; the recomputed vectors
exist only during its backward.

Off a GPU or TPU every backend's kernels run in Pallas interpret mode (``interpret=``, for tests): the Mosaic GPU
kernels then load without their register layouts (everything else, copies of blocks included, is the same code).
Lowering for CUDA (``tests/test_export.py``) proves that Mosaic GPU accepts their layouts, copies and shared-memory
plan; it cannot prove what only a run shows (e.g. the alignment of shared-memory accesses: the blocks start at
multiples of 8 floats by construction, :class:`acljax.srwm.head_tiles.TileShape`, and a test checks that).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from acljax.srwm.head_tiles import HeadTiles, TileShape
from acljax.srwm.memory import DEFAULT_ANCHOR_INTERVAL, default_anchor_interval
from acljax.srwm.state import SRWMState
from acljax.srwm.step import Precision, add_outer, prepare_inputs, step_backward, step_forward

LAYOUTS = ("triton", "mosaic_gpu", "tpu")  # the kernels' backends, each with its own arrays and grid
GPU_KERNELS = ("triton", "mosaic_gpu")
TPU_LANE_BLOCK = 128  # one vreg row of lanes


@dataclasses.dataclass(frozen=True)
class GPULayout:
    """The GPU kernel and its programs' shape (``srwm_scan(..., gpu_layout=...)``). ``kernel="triton"``: Pallas'
    Triton backend (any CUDA GPU since Ampere, and ROCm; deprecated from JAX 0.11), ``lanes`` heads per program (a
    power of two up to 128, default 8) and ``num_warps`` (default 4). ``kernel="mosaic_gpu"``: Mosaic GPU (Hopper,
    Blackwell), one head per program of one warpgroup (:mod:`acljax.srwm.head_tiles`): lanes 1, num_warps 4; it
    needs a float32 state and its blocks in shared memory (:func:`pallas_impl` falls back to Triton for the default
    layout, refuses one given). ``chunk``: steps between anchors (and, for Mosaic GPU, per time block copied in;
    default: the anchor rule; ``chunk_size`` wins). With no
    ``gpu_layout`` given, a GPU runs the layout :mod:`acljax.srwm.autotune` measured fastest for the call's shapes
    (:func:`default_gpu_layout` untuned); ``benchmarks/gpu_check.py`` sweeps them all."""

    lanes: int | None = None
    num_warps: int | None = None
    kernel: str = "triton"
    chunk: int | None = None  # steps per time block and between anchors on a GPU (None: the anchor rule)

    def __post_init__(self):
        if self.kernel not in GPU_KERNELS:
            raise ValueError(f"GPULayout.kernel must be one of {GPU_KERNELS}, got {self.kernel!r}")
        if self.chunk is not None and (type(self.chunk) is not int or self.chunk < 1):
            raise ValueError(f"GPULayout.chunk must be None or a positive int, got {self.chunk!r}")
        fixed = self.kernel == "mosaic_gpu"
        defaults = {"lanes": 1 if fixed else 8, "num_warps": 4}
        for name, top in (("lanes", TPU_LANE_BLOCK), ("num_warps", 32)):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, value := defaults[name])
            if fixed and value != defaults[name]:
                raise ValueError(f"GPULayout.{name} of the mosaic_gpu kernel (one head per warpgroup) must be "
                                 f"{defaults[name]}, got {value!r}")
            if type(value) is not int or value < 1 or value > top or value & (value - 1):
                raise ValueError(f"GPULayout.{name} must be a power of two from 1 to {top}, got {value!r}")


#: Compute capability majors the Mosaic GPU kernel is built for, Hopper (9.x) and data-centre Blackwell (10.x)
MOSAIC_GPU_MAJORS = (9, 10)
#: Shared memory one Mosaic GPU program may use on those (227 KiB), less 1 KiB for Mosaic's barriers and alignment
#: (the kernels' own use is ``TileShape.shared_bytes``, within a few hundred bytes of what Mosaic GPU plans)
MOSAIC_GPU_SHARED_BYTES = 227 * 1024 - 1024


#: A copy between global and shared memory moves at most this many entries along each axis
MOSAIC_GPU_COPY_EXTENT = 256


def compute_capability(device) -> tuple[int, int] | None:
    """A CUDA device's compute capability (major, minor); None for another device (ROCm reports a gfx name)."""
    found = re.fullmatch(r"(\d+)\.(\d+)", str(getattr(device, "compute_capability", "")))
    return (int(found[1]), int(found[2])) if found else None


def default_gpu_layout(device=None) -> GPULayout:
    """The untuned GPU layout: the Mosaic GPU kernel on a CUDA GPU of compute capability 9.x or 10.x (Hopper,
    Blackwell), else Triton's ``GPULayout()``, also where no GPU is visible (lowering for CUDA on a CPU). A shape
    or dtype the Mosaic GPU kernel cannot take falls back to Triton in :func:`pallas_impl`. ``device``: default
    the first GPU."""
    if device is None:
        try:
            device = jax.devices("gpu")[0]
        except RuntimeError:
            return GPULayout()
    capability = compute_capability(device)
    return GPULayout(kernel="mosaic_gpu") if capability and capability[0] in MOSAIC_GPU_MAJORS else GPULayout()


def _runnable_gpu_layout(gpu: GPULayout, given: bool, state: SRWMState, steps: int, chunk_size: int | None):
    """(the GPU layout, its chunk) that runs: ``gpu``, except that the Mosaic GPU kernel needs a float32 state,
    blocks of at most 256 entries along each axis, its blocks in shared memory (without a chunk given, the anchor
    rule with shorter chunks until they fit) and, where a GPU is in use, a Hopper or Blackwell one. Where it cannot
    run, Triton's default layout if ``gpu`` is the default (``given`` False), else a ValueError naming what it needs
    (the GPU only checked on one)."""
    rule = chunk_size or default_anchor_interval(steps, longest=DEFAULT_ANCHOR_INTERVAL)
    if gpu.kernel != "mosaic_gpu":
        return gpu, chunk_size or gpu.chunk or rule
    on_gpu = jax.default_backend() == "gpu"
    capability = compute_capability(jax.devices()[0]) if on_gpu else None
    dtype = jnp.dtype(state.w_y.dtype)
    chunks = [chunk_size or gpu.chunk] if chunk_size or gpu.chunk else [
        default_anchor_interval(steps, longest=longest) for longest in (64, 32, 16, 8)]
    shapes = [TileShape(state.d_out, state.head_dim, state.n_beta, chunk) for chunk in chunks]
    fitting = [shape.chunk for shape in shapes if shape.shared_bytes() <= MOSAIC_GPU_SHARED_BYTES]
    if on_gpu and not (capability and capability[0] in MOSAIC_GPU_MAJORS):
        problem = f"needs a CUDA GPU of compute capability 9.x or 10.x, this one is {jax.devices()[0].device_kind}"
    elif max(*shapes[0].sizes, chunks[0]) > MOSAIC_GPU_COPY_EXTENT:
        problem = (f"copies blocks of at most {MOSAIC_GPU_COPY_EXTENT} entries along each axis, got (E_pad, d_pad) "
                   f"{shapes[0].sizes} (d={state.head_dim}, d_out={state.d_out}) and chunk {chunks[0]}")
    elif dtype != jnp.float32:
        problem = f"computes in float32, the state is {dtype.name}"
    elif not fitting:
        problem = (f"needs {shapes[-1].shared_bytes():,} bytes of shared memory at d={state.head_dim}, "
                   f"d_out={state.d_out}, chunk {chunks[-1]}; at most {MOSAIC_GPU_SHARED_BYTES:,}")
    else:
        return gpu, fitting[0]
    if given:
        raise ValueError(f"gpu_layout.kernel='mosaic_gpu' {problem}: use GPULayout(kernel='triton') or "
                         "impl='reversible'")
    return GPULayout(), rule


# ---- the kernel body: vectors are "rows" (d, 1, G) or "columns" (1, e, G) ----------------------------

def _read(v_row, w):
    """v W per lane: (d, 1, G), (d, e, G) -> (1, e, G)."""
    return jnp.sum(v_row * w, axis=0, keepdims=True)


def _apply(w, u_col):
    """W u per lane: (d, e, G), (1, e, G) -> (d, 1, G)."""
    return jnp.sum(w * u_col, axis=1, keepdims=True)


def _eye(size, lanes):
    shape = (size, size, lanes)
    return jax.lax.broadcasted_iota(jnp.int32, shape, 0) == jax.lax.broadcasted_iota(jnp.int32, shape, 1)


def _col_to_row(col):
    """(1, d, G) -> (d, 1, G) with a masked reduction (no transpose op needed on either backend)."""
    _, d, g = col.shape
    return jnp.sum(jnp.where(_eye(d, g), jnp.broadcast_to(col, (d, d, g)), 0.0), axis=1, keepdims=True)


def _row_to_col(row):
    """(d, 1, G) -> (1, d, G)."""
    d, _, g = row.shape
    return jnp.sum(jnp.where(_eye(d, g), jnp.broadcast_to(row, (d, d, g)), 0.0), axis=0, keepdims=True)


def _softmax_col(logits, size):
    """Softmax over the first ``size`` entries of a column (1, d_pad, G); padded entries get 0."""
    valid = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1) < size
    top = jnp.max(jnp.where(valid, logits, -jnp.inf), axis=1, keepdims=True)
    e = jnp.where(valid, jnp.exp(logits - top), 0.0)
    return e / jnp.sum(e, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class _LaneBlocks:
    """The kernels' :class:`acljax.srwm.step.StepLayout`: the matrix as its four blocks (d, e, G), rows
    (d, 1, G), columns as four (1, e, G) blocks; q and k logits are masked to the first ``head_dim`` rows."""

    head_dim: int

    def load(self, ref, index, kind):
        return ref[index]

    def read(self, row, ws):
        return tuple(_read(row, w) for w in ws)

    def apply(self, ws, cols):
        return sum(_apply(w, col) for w, col in zip(ws, cols))

    def outer(self, ws, row, cols):
        return tuple(w + row * col for w, col in zip(ws, cols))

    def split(self, cols):
        return cols

    def join(self, y, q_row, k_row, b):
        return y, _row_to_col(q_row), _row_to_col(k_row), b

    def softmax_row(self, logits):
        return _col_to_row(_softmax_col(logits, self.head_dim))

    def rates(self, b):
        """(1, n_beta, G) learning rates -> one (1, 1, G) rate per block (y, q, k, b)."""
        if b.shape[1] == 1:
            return (b,) * 4
        index = jax.lax.broadcasted_iota(jnp.int32, b.shape, 1)
        return tuple(jnp.sum(jnp.where(index == i, b, 0.0), axis=1, keepdims=True) for i in range(4))

    def group_sums(self, cols):
        sums = tuple(jnp.sum(col, axis=1, keepdims=True) for col in cols)
        n_beta = cols[3].shape[1]
        if n_beta == 1:
            return sum(sums)
        index = jax.lax.broadcasted_iota(jnp.int32, (1, n_beta, sums[0].shape[2]), 1)
        return sum(jnp.where(index == i, block_sum, 0.0) for i, block_sum in enumerate(sums))

    def col_dot(self, a, b):
        return sum(jnp.sum(x * y, axis=1, keepdims=True) for x, y in zip(a, b))

    def row_sum(self, row):
        return jnp.sum(row, axis=0, keepdims=True)


def _forward_kernel(block, x_ref, *refs, geometry, keep):
    """refs: W_0 blocks, then outputs y, the final state's blocks and, if ``keep``, anchors (the state at the start
    of each chunk of the program's time block, from which the backward recomputes the chunk's vectors); then the
    geometry's scratch."""
    n = geometry.blocks
    layout = geometry.step_layout(refs[len(refs) - geometry.scratch_count:])
    w0_refs, y_ref, w_refs, anchor_refs = refs[:n], refs[n], refs[n + 1:2 * n + 1], refs[2 * n + 1:3 * n + 1]

    @pl.when(block == 0)
    def _start():
        for w0_ref, w_ref in zip(w0_refs, w_refs):
            w_ref[...] = layout.load(w0_ref, ..., "matrix")

    def step(t, ws):
        ws, y_ref[t], _ = step_forward(layout, ws, layout.load(x_ref, t, "row"))
        return ws

    ws = geometry.pack(tuple(layout.load(w_ref, ..., "matrix") for w_ref in w_refs))
    if keep:
        chunks = anchor_refs[0].shape[0]
        chunk = x_ref.shape[0] // chunks

        def run_chunk(c, ws):
            for anchor_ref, w in zip(anchor_refs, geometry.unpack(ws)):
                anchor_ref[c] = w
            return jax.lax.fori_loop(c * chunk, (c + 1) * chunk, step, ws)

        ws = jax.lax.fori_loop(0, chunks, run_chunk, ws)
    else:
        ws = jax.lax.fori_loop(0, x_ref.shape[0], step, ws)
    for w_ref, w in zip(w_refs, geometry.unpack(ws)):
        w_ref[...] = w


def _recompute_kernel(block, x_ref, *refs, geometry):
    """One chunk of one lane block, from its anchor: refs: the anchor's blocks; outputs q, k, b, v - vbar (one
    column per block) per step and the state at the chunk's end, where the backward starts reverting; scratch."""
    n = geometry.blocks
    layout = geometry.step_layout(refs[len(refs) - geometry.scratch_count:])
    anchor_refs, (q_ref, k_ref, b_ref), diff_refs, end_refs = (
        refs[:n], refs[n:n + 3], refs[n + 3:2 * n + 3], refs[2 * n + 3:3 * n + 3])

    def step(t, ws):
        ws, _, (q_ref[t], k_ref[t], b_ref[t], diffs) = step_forward(layout, ws, layout.load(x_ref, t, "row"))
        for diff_ref, diff in zip(diff_refs, geometry.unpack(diffs)):
            diff_ref[t] = diff
        return ws

    start = tuple(layout.load(anchor_ref, 0, "matrix") for anchor_ref in anchor_refs)
    ws = jax.lax.fori_loop(0, x_ref.shape[0], step, geometry.pack(start))
    for end_ref, w in zip(end_refs, geometry.unpack(ws)):
        end_ref[0] = w


def _backward_kernel(block, x_ref, q_ref, k_ref, b_ref, *refs, geometry):
    """refs: v - vbar per block, chunk end states, dy, d(final state); outputs dx, d(W_0); scratch."""
    n = geometry.blocks
    layout = geometry.step_layout(refs[len(refs) - geometry.scratch_count:])
    diff_refs, end_refs, dy_ref, dw_final_refs, dx_ref, dw_refs = (
        refs[:n], refs[n:2 * n], refs[2 * n], refs[2 * n + 1:3 * n + 1], refs[3 * n + 1], refs[3 * n + 2:4 * n + 2])

    @pl.when(block == 0)
    def _start():
        for dw_final_ref, dw_ref in zip(dw_final_refs, dw_refs):
            dw_ref[...] = layout.load(dw_final_ref, ..., "matrix")

    chunks = end_refs[0].shape[0]
    chunk = x_ref.shape[0] // chunks

    def run_chunk(c_back, dws):
        c = chunks - 1 - c_back
        ws = geometry.pack(tuple(layout.load(end_ref, c, "matrix") for end_ref in end_refs))

        def step(s, carry):
            t = (c + 1) * chunk - 1 - s
            ws, dws = carry
            diffs = geometry.pack(tuple(layout.load(diff_ref, t, "col") for diff_ref in diff_refs))
            kept = (layout.load(q_ref, t, "row"), layout.load(k_ref, t, "row"), layout.load(b_ref, t, "col"), diffs)
            dy = layout.load(dy_ref, t, "col")
            revert, dw_update, dx_ref[t] = step_backward(layout, ws, layout.load(x_ref, t, "row"), kept, dws, dy)
            return add_outer(layout, ws, *revert), add_outer(layout, dws, *dw_update)

        return jax.lax.fori_loop(0, chunk, step, (ws, dws))[1]

    start = geometry.pack(tuple(layout.load(dw_ref, ..., "matrix") for dw_ref in dw_refs))
    dws = jax.lax.fori_loop(0, chunks, run_chunk, start)
    for dw_ref, dw in zip(dw_refs, geometry.unpack(dws)):
        dw_ref[...] = dw


# ---- where each backend keeps its arrays, and its grid -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _LaneGeometry:
    """Triton and TPU kernels: lanes last, ``(..., rows, cols, N)``; the four blocks of the state separate (y, q, k,
    b columns: ``e_pad``, ``d_pad``, ``d_pad``, ``n_beta``), padded to powers of two; G lanes per program."""

    backend: str  # "triton" or "tpu"
    d_out: int
    d: int
    n_beta: int
    lanes_per_program: int
    blocks = 4  # separate matrix blocks (and column blocks)
    scratch_count = 0
    lanes_last = True
    y_block, b_block = 0, 3  # the column blocks holding y and b

    @property
    def d_pad(self) -> int:
        return _next_power_of_two(self.d)

    @property
    def columns(self) -> tuple[int, ...]:
        return _next_power_of_two(self.d_out), self.d_pad, self.d_pad, self.n_beta

    def row_shape(self):
        return self.d_pad, 1

    def col_shape(self, block: int):
        return 1, self.columns[block]

    def matrix_shape(self, block: int):
        return self.d_pad, self.columns[block]

    def step_layout(self, scratch):
        return _LaneBlocks(self.d)

    def pack(self, blocks):
        return blocks

    def unpack(self, value):
        return value

    def scratch_shapes(self, dtype):
        return []

    def padded_lanes(self, lanes: int) -> int:
        """N rounded up so that programs tile it: a TPU program takes all lanes up to 128, a Triton program its
        layout's lanes; beyond 128 lanes both take blocks of 128 (a Triton layout's lanes divide it)."""
        if lanes > TPU_LANE_BLOCK:
            return -(-lanes // TPU_LANE_BLOCK) * TPU_LANE_BLOCK
        return lanes if self.backend == "tpu" else -(-lanes // self.lanes_per_program) * self.lanes_per_program

    def to_kernel(self, state: SRWMState, xs: jax.Array):
        """state (B, H, ...), xs (T, B, H, d) -> W_0 blocks (rows, cols, N_pad), inputs (T, d_pad, 1, N_pad)."""
        steps, batch, heads, d = xs.shape
        lanes = self.padded_lanes(batch * heads)
        xs = jnp.transpose(xs, (0, 3, 1, 2)).reshape(steps, d, 1, batch * heads)
        xs = jnp.pad(xs, [(0, 0), (0, self.d_pad - d), (0, 0), (0, lanes - batch * heads)])
        return tuple(_to_lanes(w, self.d_pad, cols, lanes) for w, cols in zip(state, self.columns)), xs

    def from_kernel(self, ws, y, batch: int, heads: int, steps: int):
        """-> y (B, T, H, d_out), the final state (B, H, ...)."""
        y = y[:steps, 0, :self.d_out, :batch * heads].reshape(steps, self.d_out, batch, heads)
        cols = (self.d_out, self.d, self.d, self.n_beta)
        final = SRWMState(*(_from_lanes(w, batch, heads, self.d, c) for w, c in zip(ws, cols)))
        return jnp.transpose(y, (2, 0, 3, 1)), final

    def compiler_params(self, sequential: bool, num_warps: int):
        if self.backend == "triton":
            return _triton().CompilerParams(num_warps=num_warps)
        return pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary" if sequential else "parallel"))


@dataclasses.dataclass(frozen=True)
class _TileGeometry:
    """Mosaic GPU kernels (:mod:`acljax.srwm.head_tiles`): one head per program, lanes leading, ``(..., N, ...)``;
    the fused state transposed ``(N, E_pad, d_pad)`` with its blocks where ``shape`` (a
    :class:`~acljax.srwm.head_tiles.TileShape`) says, rows ``(d_pad,)``, columns ``(E_pad,)``."""

    shape: TileShape
    mosaic: bool  # Mosaic GPU loads (lowering for a GPU) or plain ones (interpret mode)
    backend = "mosaic_gpu"
    blocks = 1
    scratch_count = 1
    lanes_last = False
    lanes_per_program = None  # the lane axis is squeezed: one head per program
    y_block, b_block = 0, 0

    def row_shape(self):
        return self.shape.sizes[1:]

    def col_shape(self, block: int):
        return self.shape.sizes[:1]

    def matrix_shape(self, block: int):
        return self.shape.sizes

    def step_layout(self, scratch):
        return HeadTiles(self.shape, scratch[0], self.mosaic)

    def pack(self, blocks):
        return blocks[0]

    def unpack(self, value):
        return (value,)

    def scratch_shapes(self, dtype):
        return [_mosaic_gpu().SMEM(self.shape.sizes[:1], dtype)]

    def to_kernel(self, state: SRWMState, xs: jax.Array):
        """state (B, H, ...), xs (T, B, H, d) -> (W_0^T (N, E_pad, d_pad),), inputs (T, N, d_pad)."""
        steps, batch, heads, d = xs.shape
        e_pad, d_pad = self.shape.sizes
        ends = (*self.shape.starts, e_pad)  # each block padded to the next one's start
        blocks = [jnp.swapaxes(w, -1, -2).reshape(batch * heads, -1, d) for w in state]
        w = jnp.concatenate([jnp.pad(block, [(0, 0), (0, end - start - block.shape[1]), (0, d_pad - d)])
                             for block, start, end in zip(blocks, (0, *self.shape.starts), ends)], axis=1)
        return (w,), jnp.pad(xs.reshape(steps, batch * heads, d), [(0, 0), (0, 0), (0, d_pad - d)])

    def from_kernel(self, ws, y, batch: int, heads: int, steps: int):
        w = jnp.swapaxes(ws[0][:, :, :self.shape.d], -1, -2).reshape(batch, heads, self.shape.d, -1)
        sizes = (self.shape.d_out, self.shape.d, self.shape.d, self.shape.n_beta)
        final = SRWMState(*(w[..., start:start + size] for start, size in zip((0, *self.shape.starts), sizes)))
        y = y[:steps, :, :self.shape.d_out].reshape(steps, batch, heads, self.shape.d_out)
        return jnp.swapaxes(y, 0, 1), final

    def compiler_params(self, sequential: bool, num_warps: int):
        return None  # pallas_call runs these kernels only in interpret mode (on a GPU: _Specs._mosaic_gpu_kernel)


def _mosaic_gpu():
    from jax.experimental.pallas import mosaic_gpu

    return mosaic_gpu


@dataclasses.dataclass(frozen=True)
class _Operand:
    """One kernel operand: its block's leading (time) dims, ``(steps,)``, ``(chunks,)`` or ``()``, its shape per
    lane, and the whole array's shape."""

    lead: tuple[int, ...]
    shape: tuple[int, ...]
    array: tuple[int, ...]


class _Specs:
    """Grid and blocks of one geometry. Time-major arrays (T, ...) are split in time blocks (the whole sequence
    for Triton, one chunk per grid step for TPU and Mosaic GPU; one chunk per program on all with
    ``chunks_in_parallel``), per-chunk arrays (chunks, ...) likewise, per-lane arrays are one block per program."""

    def __init__(self, geometry, steps: int, chunk: int, lanes: int, gpu: GPULayout, reverse: bool = False,
                 chunks_in_parallel: bool = False):
        self.geometry, self.lanes, self.num_warps = geometry, lanes, gpu.num_warps
        self.sequential = not chunks_in_parallel
        self.block_lanes = min(geometry.lanes_per_program or 1, lanes)
        self.steps, self.chunks = steps, steps // chunk
        self.time_blocks = 1 if geometry.backend == "triton" and not chunks_in_parallel else self.chunks
        self.steps_per_block, self.chunks_per_block = steps // self.time_blocks, self.chunks // self.time_blocks
        self.grid = (lanes // self.block_lanes, self.time_blocks)
        last = self.time_blocks - 1
        self._time = (lambda t: last - t) if reverse else (lambda t: t)

    def _operand(self, lead_block, lead, shape):
        shape = tuple(shape)
        array = (*lead, *shape, self.lanes) if self.geometry.lanes_last else (*lead, self.lanes, *shape)
        return _Operand(lead_block, shape, array)

    def per_step(self, shape):
        """A time-major array of per-lane ``shape``."""
        return self._operand((self.steps_per_block,), (self.steps,), shape)

    def per_chunk(self, shape):
        return self._operand((self.chunks_per_block,), (self.chunks,), shape)

    def per_lane(self, shape):
        return self._operand((), (), shape)

    def _block_spec(self, operand: _Operand):
        """The operand's BlockSpec on the grid (lane block g, time block t)."""
        lead, zeros = operand.lead, (0,) * len(operand.shape)
        if self.geometry.lanes_last:
            return pl.BlockSpec((*lead, *operand.shape, self.block_lanes),
                                lambda g, t: (*(self._time(t),) * len(lead), *zeros, g))
        return pl.BlockSpec((*lead, None, *operand.shape), lambda g, t: (*(self._time(t),) * len(lead), g, *zeros))

    def call(self, kernel, name, interpret, inputs, outputs, dtype, *args):
        """``kernel(time block, *input refs, *output refs, *scratch refs, geometry=...)`` on every program; inputs
        and outputs are :class:`_Operand`. Mosaic GPU (not interpreted) runs ``plgpu.kernel`` (``pallas_call`` is
        deprecated there), the others ``pallas_call``."""
        kernel = functools.partial(kernel, geometry=self.geometry)
        out_shape = [jax.ShapeDtypeStruct(operand.array, dtype) for operand in outputs]
        scratch = self.geometry.scratch_shapes(dtype)
        if self.geometry.backend == "mosaic_gpu" and self.geometry.mosaic:
            return self._mosaic_gpu_kernel(kernel, name, inputs, outputs, out_shape, scratch, *args)
        return pl.pallas_call(
            lambda *refs: kernel(pl.program_id(1), *refs), grid=self.grid,
            in_specs=[self._block_spec(o) for o in inputs], out_specs=[self._block_spec(o) for o in outputs],
            out_shape=out_shape, scratch_shapes=scratch,
            compiler_params=self.geometry.compiler_params(self.sequential, self.num_warps),
            interpret=interpret, name=name)(*args)

    def _mosaic_gpu_kernel(self, kernel, name, inputs, outputs, out_shape, scratch, *args):
        """One program per (lane, parallel time block); inside, ``plgpu.emit_pipeline`` walks the sequential time
        blocks, copying each block between global and shared memory (one buffer per block: the state carried in
        an output block across time blocks must stay in one)."""
        parallel, sequential = (1, self.time_blocks) if self.sequential else (self.time_blocks, 1)
        operands = [*inputs, *outputs]

        def body(*refs):
            lane, part = jax.lax.axis_index("lanes"), jax.lax.axis_index("time")
            arrays, scratch_refs = refs[:len(operands)], refs[len(operands):]

            def spec(operand):
                zeros = (0,) * len(operand.shape)
                return pl.BlockSpec((*operand.lead, *operand.shape),
                                    lambda s: (*(self._time(part * sequential + s),) * len(operand.lead), *zeros))

            def step(indices, *block_refs):
                kernel(part * sequential + indices[0], *block_refs, *scratch_refs)

            lane_views = [array.at[:, lane] if operand.lead else array.at[lane] for array, operand in
                          zip(arrays, operands)]
            # max_concurrent_steps=1: every block gets one buffer per concurrent step, and the state carried across
            # time blocks in its output block must stay in one (so a chunk's input copy is not overlapped)
            _mosaic_gpu().emit_pipeline(step, grid=(sequential,), in_specs=[spec(o) for o in inputs],
                                        out_specs=[spec(o) for o in outputs], max_concurrent_steps=1)(*lane_views)

        body.__name__ = name  # the kernel's name
        # lanes last: the grid's last axis is CUDA's x, the only one allowed more than 65,535 programs
        return _mosaic_gpu().kernel(body, out_type=out_shape, scratch_types=scratch, grid=(parallel, self.lanes),
                                    grid_names=("time", "lanes"), compiler_params=_mosaic_gpu().CompilerParams())(*args)


def _forward_call(geometry, interpret, chunk, gpu, keep, ws0, xs):
    steps, lanes = xs.shape[0], xs.shape[-1 if geometry.lanes_last else 1]
    specs = _Specs(geometry, steps, chunk, lanes, gpu)
    n = geometry.blocks
    outputs = [specs.per_step(geometry.col_shape(geometry.y_block)),
               *(specs.per_lane(geometry.matrix_shape(j)) for j in range(n))]
    if keep:
        outputs += [specs.per_chunk(geometry.matrix_shape(j)) for j in range(n)]
    inputs = [specs.per_step(geometry.row_shape()), *(specs.per_lane(geometry.matrix_shape(j)) for j in range(n))]
    kernel = functools.partial(_forward_kernel, keep=keep)
    outs = specs.call(kernel, "srwm_forward", interpret, inputs, outputs, xs.dtype, xs, *ws0)
    y, ws = outs[0], tuple(outs[1:n + 1])
    return (ws, y, tuple(outs[n + 1:])) if keep else (ws, y)


def _recompute_call(geometry, interpret, chunk, gpu, xs, anchors):
    """Every chunk's per-step vectors and end state from its anchor, the chunks of a lane block in parallel."""
    steps, lanes = xs.shape[0], xs.shape[-1 if geometry.lanes_last else 1]
    specs = _Specs(geometry, steps, chunk, lanes, gpu, chunks_in_parallel=True)
    n = geometry.blocks
    row = specs.per_step(geometry.row_shape())
    outputs = [row, row, specs.per_step(geometry.col_shape(geometry.b_block)),
               *(specs.per_step(geometry.col_shape(j)) for j in range(n)),
               *(specs.per_chunk(geometry.matrix_shape(j)) for j in range(n))]
    inputs = [row, *(specs.per_chunk(geometry.matrix_shape(j)) for j in range(n))]
    outs = specs.call(_recompute_kernel, "srwm_recompute", interpret, inputs, outputs, xs.dtype, xs, *anchors)
    return outs[0], outs[1], outs[2], tuple(outs[3:3 + n]), tuple(outs[3 + n:])


def _backward_call(geometry, interpret, chunk, gpu, xs, q, k, b, diffs, ends, dy, dws_final):
    steps, lanes = xs.shape[0], xs.shape[-1 if geometry.lanes_last else 1]
    specs = _Specs(geometry, steps, chunk, lanes, gpu, reverse=True)
    n = geometry.blocks
    row = specs.per_step(geometry.row_shape())
    matrices = [specs.per_lane(geometry.matrix_shape(j)) for j in range(n)]
    inputs = [row, row, row, specs.per_step(geometry.col_shape(geometry.b_block)),
              *(specs.per_step(geometry.col_shape(j)) for j in range(n)),
              *(specs.per_chunk(geometry.matrix_shape(j)) for j in range(n)),
              specs.per_step(geometry.col_shape(geometry.y_block)), *matrices]
    outs = specs.call(_backward_kernel, "srwm_backward", interpret, inputs, [row, *matrices], xs.dtype,
                      xs, q, k, b, *diffs, *ends, dy, *dws_final)
    return tuple(outs[1:]), outs[0]


# ---- the differentiable core over one geometry's arrays ------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _kernels(geometry, chunk, interpret, gpu, ws0, xs):
    return _forward_call(geometry, interpret, chunk, gpu, False, ws0, xs)


def _kernels_fwd(geometry, chunk, interpret, gpu, ws0, xs):
    ws, y, anchors = _forward_call(geometry, interpret, chunk, gpu, True, ws0, xs)
    return (ws, y), (xs, anchors)


def _kernels_bwd(geometry, chunk, interpret, gpu, residuals, cotangents):
    (xs, anchors), (dws_final, dy) = residuals, cotangents
    q, k, b, diffs, ends = _recompute_call(geometry, interpret, chunk, gpu, xs, anchors)
    return _backward_call(geometry, interpret, chunk, gpu, xs, q, k, b, diffs, ends, dy, dws_final)


_kernels.defvjp(_kernels_fwd, _kernels_bwd)


# ---- from and to the library's (B, T, H, d) layout -----------------------------------------------------

def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _to_lanes(w: jax.Array, rows: int, cols: int, lanes: int) -> jax.Array:
    """(B, H, r, c) -> (rows, cols, lanes), zero-padded."""
    batch, heads, r, c = w.shape
    w = jnp.transpose(w, (2, 3, 0, 1)).reshape(r, c, batch * heads)
    return jnp.pad(w, [(0, rows - r), (0, cols - c), (0, lanes - batch * heads)])


def _from_lanes(w: jax.Array, batch: int, heads: int, rows: int, cols: int) -> jax.Array:
    """(rows_pad, cols_pad, lanes) -> (B, H, rows, cols)."""
    w = w[:rows, :cols, :batch * heads].reshape(rows, cols, batch, heads)
    return jnp.transpose(w, (2, 3, 0, 1))


def _geometry(backend: str, state: SRWMState, chunk: int, gpu: GPULayout, interpret: bool):
    if backend == "mosaic_gpu":
        return _TileGeometry(TileShape(state.d_out, state.head_dim, state.n_beta, chunk), mosaic=not interpret)
    lanes = gpu.lanes if backend == "triton" else TPU_LANE_BLOCK
    return _LaneGeometry(backend, state.d_out, state.head_dim, state.n_beta, lanes)


def _run(backend: str, interpret, chunk: int, gpu: GPULayout, state: SRWMState, xs: jax.Array):
    """One backend's kernels: state (B, H, ...), time-major inputs (T, B, H, d) -> (y (B, T, H, d_out), final)."""
    steps, batch, heads, _ = xs.shape
    geometry = _geometry(backend, state, chunk, gpu, interpret is not False)
    ws0, xs = geometry.to_kernel(state, jnp.pad(xs, [(0, -(-steps // chunk) * chunk - steps), (0, 0), (0, 0),
                                                     (0, 0)]))  # zero steps appended are no-ops
    ws, y = _kernels(geometry, chunk, interpret, gpu, ws0, xs)
    return geometry.from_kernel(ws, y, batch, heads, steps)


def _triton():
    """Pallas' Triton module, imported only where a GPU kernel is built: deprecated from JAX 0.11 (importing acljax
    must not warn) and to be removed from JAX; an ImportError says what to run instead."""
    try:
        from jax.experimental.pallas import triton
    except ImportError as error:
        raise ImportError(f"impl='pallas' on a GPU needs Pallas' Triton backend, which jax {jax.__version__} does "
                          "not have; use impl='auto' or 'reversible'") from error
    return triton


def pallas_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, chunk_size: int | None = None,
                precision: Precision = "highest", interpret: str | pltpu.InterpretParams | None = None,
                gpu_layout: GPULayout | None = None):
    """state batched (B, H, ...), x: (B, T, H, d) -> (y (B, T, H, d_out), final state).

    Products are float32 elementwise multiply-adds whatever ``precision`` says (it selects MXU/tensor-core passes,
    which these kernels do not use). ``chunk_size``: steps between exact anchor states of the backward (default:
    :func:`acljax.srwm.memory.default_anchor_interval` with chunks of at most 64 steps: T itself up to 64, else a
    divisor of T in [32, 64]; time is padded to a multiple of it, so only where T has no such divisor; on a GPU
    ``gpu_layout.chunk`` where set). ``interpret``: None (the platform being compiled for picks its kernel: CUDA the
    ``gpu_layout``'s, ROCm Triton's, TPU Mosaic TPU's; other platforms, the CPU, run the TPU kernels in Pallas
    interpret mode: for tests, slow), one of ``LAYOUTS`` (that backend's kernels, arrays and grid in interpret mode
    on any platform), or a ``pltpu.InterpretParams`` (the TPU kernels in the TPU interpreter, which models HBM/VMEM
    block copies and multiple cores). ``gpu_layout``: the GPU kernel and programs' shape (default
    :func:`default_gpu_layout`; :func:`acljax.srwm.srwm_scan` passes the autotuned one on a GPU,
    :mod:`acljax.srwm.autotune`).
    """
    del precision
    if not (gpu_layout is None or isinstance(gpu_layout, GPULayout)):
        raise ValueError(f"gpu_layout must be None or an acljax.srwm.pallas.GPULayout, got {gpu_layout!r}")
    if not (interpret is None or interpret in LAYOUTS or isinstance(interpret, pltpu.InterpretParams)):
        raise ValueError(f"interpret must be None, one of {LAYOUTS} or a pltpu.InterpretParams, got {interpret!r}")
    # reversible's rule, chunks of at most 64 steps: a time block is one chunk, held on-chip
    chunk = chunk_size or default_anchor_interval(x.shape[1], longest=DEFAULT_ANCHOR_INTERVAL)
    gpu = gpu_layout or default_gpu_layout()
    if interpret is None:  # what a GPU can run (interpret mode runs any kernel at any size)
        gpu, gpu_chunk = _runnable_gpu_layout(gpu, gpu_layout is not None, state, x.shape[1], chunk_size)
    else:
        gpu_chunk = chunk_size or gpu.chunk or chunk
    xs = prepare_inputs(x, state.w_y.dtype, input_softmax)  # (T, B, H, d)
    if isinstance(interpret, pltpu.InterpretParams):
        return _run("tpu", interpret, chunk, gpu, state, xs)
    if interpret is not None:
        return _run(interpret, True, chunk if interpret == "tpu" else gpu_chunk, gpu, state, xs)

    def on(backend, interpreted=False):
        return functools.partial(_run, backend, interpreted, gpu_chunk if backend in GPU_KERNELS else chunk, gpu)

    return jax.lax.platform_dependent(state, xs, cuda=on(gpu.kernel), rocm=on("triton"), tpu=on("tpu"),
                                      default=on("tpu", True))
