"""Pallas SRWM kernels (``impl="pallas"``): forward and a reversible backward for GPUs and TPUs.

Layout ("lanes"): every (batch row, head) pair is one lane n of N = B * H. A state block X of the
fused step is held as ``(d, e_X, N)`` (rows, columns, lanes), inputs as ``(T, d, 1, N)``. One program
owns a block of G lanes for the whole sequence: its four fast-weight blocks stay on-chip (registers /
shared memory on GPUs, VMEM on TPUs) while an in-kernel loop runs over time. Every product is an
elementwise multiply and a reduction over rows or columns, in float32: a head's mat-vecs (16 x 52) are
far too small for tensor cores / the MXU, and lanes-as-heads keeps all 128 TPU lanes busy.

- GPU: Pallas' Triton lowering, grid (N / G, 1) with G lanes per program (:class:`GPULayout`, default 8),
  each program loops over all T steps. Chosen over
  Mosaic GPU because the step is small elementwise/reduction work with no matmul to feed warpgroup
  MMA, and Triton runs on every CUDA GPU since Ampere (and on ROCm) where Mosaic GPU needs Hopper.
  Triton needs power-of-two block sizes, so d and d_out are padded up to one (masked / exact no-op).
  Pallas' Triton backend is deprecated from JAX 0.11: there ``impl="auto"`` runs ``"reversible"`` on GPUs
  (:func:`acljax.srwm.api.resolve_impl`), and these kernels run when asked for by name.
- TPU: Mosaic, grid (N / 128, T / C) with time "arbitrary": the state is carried in the resident
  output block across time blocks of C steps, inputs stream in per block.
- The kernel body is the same on both; only the grid and block shapes differ. The backward's recompute kernel
  (below) has grid (lane blocks, T / C) on both, every program one chunk, both axes parallel.

The step and its backward are :func:`acljax.srwm.step.step_forward` / :func:`~acljax.srwm.step.step_backward`, the
same code ``reversible`` runs, on the kernels' layout (``_LaneBlocks``). So is the residual policy
(``jax.custom_vjp``): the forward keeps only the state at the start of every chunk of C steps (default:
``reversible``'s anchor rule with C at most 64: a TPU time block holds one chunk of every per-step array in VMEM);
the backward first recomputes each chunk's per-step vectors (q, k, b, v - vbar) and end state from its anchor, all
chunks of a lane block in parallel (one program each), then walks time in reverse, reverting each update on-chip
from the chunk's end state and applying the step's hand-derived gradient. Between forward and backward a layer holds
O(T / C) states; the recomputed vectors exist only during its backward.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from acljax.srwm.memory import DEFAULT_ANCHOR_INTERVAL, default_anchor_interval
from acljax.srwm.state import SRWMState
from acljax.srwm.step import Precision, add_outer, prepare_inputs, step_backward, step_forward

LAYOUTS = ("gpu", "tpu")
TPU_LANE_BLOCK = 128  # one vreg row of lanes


@dataclasses.dataclass(frozen=True)
class GPULayout:
    """The Triton programs' shape (``srwm_scan(..., gpu_layout=...)``): ``lanes`` (heads) per program, a power of
    two up to 128, and ``num_warps``. ``GPULayout()`` is an untuned guess; with no ``gpu_layout`` given, a GPU
    runs the layout :mod:`acljax.srwm.autotune` measured fastest for the call's shapes; ``benchmarks/gpu_check.py``
    sweeps them all."""

    lanes: int = 8
    num_warps: int = 4

    def __post_init__(self):
        for name, value, top in (("lanes", self.lanes, TPU_LANE_BLOCK), ("num_warps", self.num_warps, 32)):
            if type(value) is not int or value < 1 or value > top or value & (value - 1):
                raise ValueError(f"GPULayout.{name} must be a power of two from 1 to {top}, got {value!r}")



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


def _forward_kernel(x_ref, *refs, head_dim, keep):
    """refs: W_0 blocks (4), then outputs y, final state (4) and, if ``keep``, anchors (4): the state at the start
    of each chunk of the program's time block, from which the backward recomputes the chunk's vectors."""
    w0_refs, (y_ref, *rest) = refs[:4], refs[4:]
    w_refs = rest[:4]

    @pl.when(pl.program_id(1) == 0)
    def _start():
        for w0_ref, w_ref in zip(w0_refs, w_refs):
            w_ref[...] = w0_ref[...]

    layout = _LaneBlocks(head_dim)

    def step(t, ws):
        ws, y_ref[t], _ = step_forward(layout, ws, x_ref[t])
        return ws

    ws = tuple(w_ref[...] for w_ref in w_refs)
    if keep:
        anchor_refs = rest[4:8]
        chunks = anchor_refs[0].shape[0]
        chunk = x_ref.shape[0] // chunks

        def run_chunk(c, ws):
            for anchor_ref, w in zip(anchor_refs, ws):
                anchor_ref[c] = w
            return jax.lax.fori_loop(c * chunk, (c + 1) * chunk, step, ws)

        ws = jax.lax.fori_loop(0, chunks, run_chunk, ws)
    else:
        ws = jax.lax.fori_loop(0, x_ref.shape[0], step, ws)
    for w_ref, w in zip(w_refs, ws):
        w_ref[...] = w


def _recompute_kernel(x_ref, *refs, head_dim):
    """One chunk of one lane block, from its anchor: refs: the anchor (4); outputs q, k, b, diffs (4) per step and
    the state at the chunk's end (4), where the backward starts reverting."""
    anchor_refs, (q_ref, k_ref, b_ref), diff_refs, end_refs = refs[:4], refs[4:7], refs[7:11], refs[11:15]
    layout = _LaneBlocks(head_dim)

    def step(t, ws):
        ws, _, (q_ref[t], k_ref[t], b_ref[t], diffs) = step_forward(layout, ws, x_ref[t])
        for diff_ref, diff in zip(diff_refs, diffs):
            diff_ref[t] = diff
        return ws

    ws = jax.lax.fori_loop(0, x_ref.shape[0], step, tuple(anchor_ref[0] for anchor_ref in anchor_refs))
    for end_ref, w in zip(end_refs, ws):
        end_ref[0] = w


def _backward_kernel(x_ref, q_ref, k_ref, b_ref, *refs, head_dim):
    """refs: diffs (4), chunk end states (4), dy, d(final state) (4); outputs dx, d(W_0) (4)."""
    diff_refs, end_refs, (dy_ref,), dw_final_refs, (dx_ref,), dw_refs = (
        refs[0:4], refs[4:8], refs[8:9], refs[9:13], refs[13:14], refs[14:18])

    @pl.when(pl.program_id(1) == 0)
    def _start():
        for dw_final_ref, dw_ref in zip(dw_final_refs, dw_refs):
            dw_ref[...] = dw_final_ref[...]

    chunks = end_refs[0].shape[0]
    chunk = x_ref.shape[0] // chunks
    layout = _LaneBlocks(head_dim)

    def run_chunk(c_back, dws):
        c = chunks - 1 - c_back
        ws = tuple(end_ref[c] for end_ref in end_refs)

        def step(s, carry):
            t = (c + 1) * chunk - 1 - s
            ws, dws = carry
            kept = q_ref[t], k_ref[t], b_ref[t], tuple(diff_ref[t] for diff_ref in diff_refs)
            revert, dw_update, dx_ref[t] = step_backward(layout, ws, x_ref[t], kept, dws, dy_ref[t])
            return add_outer(layout, ws, *revert), add_outer(layout, dws, *dw_update)

        return jax.lax.fori_loop(0, chunk, step, (ws, dws))[1]

    dws = jax.lax.fori_loop(0, chunks, run_chunk, tuple(dw_ref[...] for dw_ref in dw_refs))
    for dw_ref, dw in zip(dw_refs, dws):
        dw_ref[...] = dw


# ---- pallas_call wiring per layout ---------------------------------------------------------------------

def _lane_block(layout: str, lanes: int, gpu: GPULayout) -> int:
    if layout == "gpu":
        return gpu.lanes
    return lanes if lanes <= TPU_LANE_BLOCK else TPU_LANE_BLOCK


def padded_lanes(lanes: int, gpu: GPULayout = GPULayout()) -> int:
    """N rounded up so that both layouts tile it: to the GPU layout's lanes (default 8) up to 128 lanes, to 128
    beyond."""
    step = gpu.lanes if lanes <= TPU_LANE_BLOCK else TPU_LANE_BLOCK
    return -(-lanes // step) * step


def _triton():
    """Pallas' Triton module, imported only where a GPU kernel is built: deprecated from JAX 0.11 (importing acljax
    must not warn) and to be removed from JAX; an ImportError says what to run instead."""
    try:
        from jax.experimental.pallas import triton
    except ImportError as error:
        raise ImportError(f"impl='pallas' on a GPU needs Pallas' Triton backend, which jax {jax.__version__} does "
                          "not have; use impl='auto' or 'reversible'") from error
    return triton


class _Specs:
    """Grid and BlockSpecs of one layout. Time-major arrays (T, rows, cols, N) are split in time blocks
    (the whole sequence on GPUs, one chunk per grid step on TPUs; one chunk per program on both with
    ``chunks_in_parallel``), per-chunk arrays (chunks, d, e, N) likewise, per-lane arrays (rows, cols, N) are one
    block per lane block."""

    def __init__(self, layout: str, steps: int, chunk: int, lanes: int, gpu: GPULayout, reverse: bool = False,
                 chunks_in_parallel: bool = False):
        self.layout, self.lanes, self.num_warps = layout, _lane_block(layout, lanes, gpu), gpu.num_warps
        self.chunks_in_parallel = chunks_in_parallel
        chunks = steps // chunk
        self.time_blocks = chunks if layout == "tpu" or chunks_in_parallel else 1
        self.steps_per_block, self.chunks_per_block = steps // self.time_blocks, chunks // self.time_blocks
        self.grid = (lanes // self.lanes, self.time_blocks)
        last = self.time_blocks - 1
        self._time = (lambda t: last - t) if reverse else (lambda t: t)

    def per_step(self, rows, cols):
        return pl.BlockSpec((self.steps_per_block, rows, cols, self.lanes), lambda g, t: (self._time(t), 0, 0, g))

    def per_chunk(self, rows, cols):
        return pl.BlockSpec((self.chunks_per_block, rows, cols, self.lanes), lambda g, t: (self._time(t), 0, 0, g))

    def per_lane(self, rows, cols):
        return pl.BlockSpec((rows, cols, self.lanes), lambda g, t: (0, 0, g))

    def compiler_params(self):
        if self.layout == "gpu":
            return _triton().CompilerParams(num_warps=self.num_warps)
        time = "parallel" if self.chunks_in_parallel else "arbitrary"
        return pltpu.CompilerParams(dimension_semantics=("parallel", time))


def _forward_call(layout, interpret, head_dim, chunk, gpu, keep, ws0, xs):
    steps, d, _, lanes = xs.shape
    specs = _Specs(layout, steps, chunk, lanes, gpu)
    cols = [w.shape[1] for w in ws0]
    dtype = xs.dtype
    out_specs = [specs.per_step(1, cols[0]), *(specs.per_lane(d, e) for e in cols)]
    out_shape = [jax.ShapeDtypeStruct((steps, 1, cols[0], lanes), dtype),
                 *(jax.ShapeDtypeStruct(w.shape, dtype) for w in ws0)]
    if keep:
        out_specs += [specs.per_chunk(d, e) for e in cols]
        out_shape += [jax.ShapeDtypeStruct((steps // chunk, d, e, lanes), dtype) for e in cols]
    outs = pl.pallas_call(
        functools.partial(_forward_kernel, head_dim=head_dim, keep=keep), grid=specs.grid,
        in_specs=[specs.per_step(d, 1), *(specs.per_lane(d, e) for e in cols)],
        out_specs=out_specs, out_shape=out_shape, compiler_params=specs.compiler_params(),
        interpret=interpret, name="srwm_forward")(xs, *ws0)
    y, ws = outs[0], tuple(outs[1:5])
    return (ws, y, tuple(outs[5:9])) if keep else (ws, y)


def _recompute_call(layout, interpret, head_dim, chunk, gpu, xs, anchors):
    """Every chunk's per-step vectors and end state from its anchor, the chunks of a lane block in parallel."""
    steps, d, _, lanes = xs.shape
    specs = _Specs(layout, steps, chunk, lanes, gpu, chunks_in_parallel=True)
    cols = [w.shape[2] for w in anchors]
    dtype = xs.dtype
    outs = pl.pallas_call(
        functools.partial(_recompute_kernel, head_dim=head_dim), grid=specs.grid,
        in_specs=[specs.per_step(d, 1), *(specs.per_chunk(d, e) for e in cols)],
        out_specs=[specs.per_step(d, 1), specs.per_step(d, 1), specs.per_step(1, cols[3]),
                   *(specs.per_step(1, e) for e in cols), *(specs.per_chunk(d, e) for e in cols)],
        out_shape=[jax.ShapeDtypeStruct((steps, d, 1, lanes), dtype)] * 2
        + [jax.ShapeDtypeStruct((steps, 1, cols[3], lanes), dtype)]
        + [jax.ShapeDtypeStruct((steps, 1, e, lanes), dtype) for e in cols]
        + [jax.ShapeDtypeStruct(w.shape, dtype) for w in anchors],
        compiler_params=specs.compiler_params(), interpret=interpret, name="srwm_recompute")(xs, *anchors)
    return outs[0], outs[1], outs[2], tuple(outs[3:7]), tuple(outs[7:11])


def _backward_call(layout, interpret, head_dim, chunk, gpu, xs, q, k, b, diffs, ends, dy, dws_final):
    steps, d, _, lanes = xs.shape
    specs = _Specs(layout, steps, chunk, lanes, gpu, reverse=True)
    cols = [w.shape[1] for w in dws_final]
    outs = pl.pallas_call(
        functools.partial(_backward_kernel, head_dim=head_dim), grid=specs.grid,
        in_specs=[specs.per_step(d, 1), specs.per_step(d, 1), specs.per_step(d, 1), specs.per_step(1, cols[3]),
                  *(specs.per_step(1, e) for e in cols), *(specs.per_chunk(d, e) for e in cols),
                  specs.per_step(1, cols[0]), *(specs.per_lane(d, e) for e in cols)],
        out_specs=[specs.per_step(d, 1), *(specs.per_lane(d, e) for e in cols)],
        out_shape=[jax.ShapeDtypeStruct(xs.shape, xs.dtype), *(jax.ShapeDtypeStruct(w.shape, xs.dtype)
                                                              for w in dws_final)],
        compiler_params=specs.compiler_params(), interpret=interpret, name="srwm_backward",
    )(xs, q, k, b, *diffs, *ends, dy, *dws_final)
    return tuple(outs[1:]), outs[0]


def _on_platform(call, interpret, *args):
    """Run ``call(layout, interpret, *args)`` with the layout of the platform being lowered for; on any
    other platform (CPU) the TPU layout in Pallas interpret mode. ``interpret`` (see :func:`pallas_impl`)
    forces interpret mode."""
    if isinstance(interpret, pltpu.InterpretParams):
        return call("tpu", interpret, *args)
    if interpret is not None:
        return call(interpret, True, *args)
    gpu = functools.partial(call, "gpu", False)
    return jax.lax.platform_dependent(*args, cuda=gpu, rocm=gpu, tpu=functools.partial(call, "tpu", False),
                                      default=functools.partial(call, "tpu", True))


# ---- the differentiable core over lane-layout arrays ---------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _pallas_core(head_dim, chunk, interpret, gpu, ws0, xs):
    call = functools.partial(_forward_call, head_dim=head_dim, chunk=chunk, gpu=gpu, keep=False)
    return _on_platform(lambda layout, interpret, w, x: call(layout, interpret, ws0=w, xs=x),
                        interpret, ws0, xs)


def _pallas_core_fwd(head_dim, chunk, interpret, gpu, ws0, xs):
    call = functools.partial(_forward_call, head_dim=head_dim, chunk=chunk, gpu=gpu, keep=True)
    ws, y, anchors = _on_platform(lambda layout, interpret, w, x: call(layout, interpret, ws0=w, xs=x),
                                  interpret, ws0, xs)
    return (ws, y), (xs, anchors)


def _pallas_core_bwd(head_dim, chunk, interpret, gpu, residuals, cotangents):
    dws_final, dy = cotangents

    def backward(layout, interpret, xs, anchors, dy, dws_final):
        q, k, b, diffs, ends = _recompute_call(layout, interpret, head_dim, chunk, gpu, xs, anchors)
        return _backward_call(layout, interpret, head_dim, chunk, gpu, xs, q, k, b, diffs, ends, dy, dws_final)

    return _on_platform(backward, interpret, *residuals, dy, dws_final)


_pallas_core.defvjp(_pallas_core_fwd, _pallas_core_bwd)


# ---- conversion from and to the library's (B, T, H, d) layout ----------------------------------------

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


def pallas_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, chunk_size: int | None = None,
                precision: Precision = "highest", interpret: str | pltpu.InterpretParams | None = None,
                gpu_layout: GPULayout | None = None):
    """state batched (B, H, ...), x: (B, T, H, d) -> (y (B, T, H, d_out), final state).

    Products are float32 elementwise multiply-adds whatever ``precision`` says (it selects MXU/tensor-core
    passes, which these kernels do not use). ``chunk_size``: steps between exact anchor states of the
    backward (default: :func:`acljax.srwm.memory.default_anchor_interval` with chunks of at most 64 steps: T
    itself up to 64, else a divisor of T in [32, 64]; time is padded to a multiple of it, so only where T has no
    such divisor). ``interpret``: None (the platform being compiled for picks its kernel; other
    platforms, the CPU, run the TPU layout in Pallas interpret mode: for tests, slow), "gpu" or "tpu" (that
    layout's grid in interpret mode on any platform), or a ``pltpu.InterpretParams`` (the TPU layout in
    the TPU interpreter, which models HBM/VMEM block copies and multiple cores). ``gpu_layout``: the GPU
    programs' shape (default ``GPULayout()``; :func:`acljax.srwm.srwm_scan` passes the autotuned one on a GPU,
    :mod:`acljax.srwm.autotune`).
    """
    del precision
    gpu = GPULayout() if gpu_layout is None else gpu_layout
    if not isinstance(gpu, GPULayout):
        raise ValueError(f"gpu_layout must be None or an acljax.srwm.pallas.GPULayout, got {gpu_layout!r}")
    if not (interpret is None or interpret in LAYOUTS or isinstance(interpret, pltpu.InterpretParams)):
        raise ValueError(f"interpret must be None, one of {LAYOUTS} or a pltpu.InterpretParams, got {interpret!r}")
    batch, steps, heads, d = x.shape
    d_out, n_beta = state.d_out, state.n_beta
    # reversible's rule, chunks of at most 64 steps: a TPU time block is one chunk, held twice in VMEM
    chunk = chunk_size or default_anchor_interval(steps, longest=DEFAULT_ANCHOR_INTERVAL)
    d_pad, e_pad, lanes = _next_power_of_two(d), _next_power_of_two(d_out), padded_lanes(batch * heads, gpu)
    padded_steps = math.ceil(steps / chunk) * chunk
    xs = prepare_inputs(x, state.w_y.dtype, input_softmax)  # (T, B, H, d); zero steps appended are no-ops
    xs = jnp.transpose(xs, (0, 3, 1, 2)).reshape(steps, d, 1, batch * heads)
    xs = jnp.pad(xs, [(0, padded_steps - steps), (0, d_pad - d), (0, 0), (0, lanes - batch * heads)])
    ws0 = tuple(_to_lanes(w, d_pad, cols, lanes) for w, cols in zip(state, (e_pad, d_pad, d_pad, n_beta)))
    ws, y = _pallas_core(d, chunk, interpret, gpu, ws0, xs)
    y = y[:steps, 0, :d_out, :batch * heads].reshape(steps, d_out, batch, heads)
    final = SRWMState(*(_from_lanes(w, batch, heads, d, cols) for w, cols in zip(ws, (d_out, d, d, n_beta))))
    return jnp.transpose(y, (2, 0, 3, 1)), final
