"""``srwm_scan``: run the SRWM over a sequence with a chosen implementation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from acljax.srwm.autotune import gpu_layout_for
from acljax.srwm.memory import reversible_impl, scan_remat_impl
from acljax.srwm.pallas import GPULayout, pallas_impl
from acljax.srwm.reference import reference_impl
from acljax.srwm.state import SRWMState, broadcast_state
from acljax.srwm.step import PRECISIONS, Precision, check_precision, scan_impl

#: name -> fn(batched state in the compute dtype, x (B, T, H, d), *, input_softmax, precision) -> (y, final state)
IMPLEMENTATIONS: dict[str, Callable] = {
    "reference": reference_impl,
    "scan": scan_impl,
    "scan_remat": scan_remat_impl,
    "reversible": reversible_impl,
    "pallas": pallas_impl,
}
CHUNKED = ("scan_remat", "reversible", "pallas")  # the implementations that take chunk_size
Impl = Literal["auto", "reference", "scan", "scan_remat", "reversible", "pallas"]
# The JAX release from which Pallas' Triton backend (the GPU kernel's) is deprecated: "auto" does not pick it there
TRITON_DEPRECATED_FROM = (0, 11)


def _describe(a) -> str:
    return f"shape {tuple(np.shape(a))} dtype {jnp.result_type(a)}"


def require_array(value, name: str, layout: str) -> None:
    """TypeError unless ``value`` is a JAX or NumPy array (a tracer included): the message names the type that
    arrived, never its values (a nested list would fill the screen)."""
    if not isinstance(value, (jax.Array, np.ndarray)):
        raise TypeError(f"{name} must be a JAX or NumPy array of shape {layout}, got {type(value).__name__}"
                        + (" (convert it with jnp.asarray)" if isinstance(value, (list, tuple)) else ""))


def validate_state(state, *, num_heads: int | None = None, head_dim: int | None = None) -> None:
    """Raise ValueError unless ``state`` is a consistent SRWMState (optionally with H heads of width d)."""
    if not isinstance(state, SRWMState):
        raise ValueError(f"state must be an SRWMState (see acljax.srwm.init_state), got {type(state).__name__}")
    for name, w in state._asdict().items():
        require_array(w, f"state.{name}", "(..., H, d, cols)")
        if np.ndim(w) < 3:
            raise ValueError(f"state.{name} must have rank >= 3 (..., H, d, cols), got {_describe(w)}")
        if not jnp.issubdtype(jnp.result_type(w), jnp.floating):
            raise ValueError(f"state.{name} must be floating point, got {_describe(w)}")
    h, d = state.num_heads, state.head_dim
    lead = state.batch_shape
    expected = {"w_y": (*lead, h, d, state.d_out), "w_q": (*lead, h, d, d),
                "w_k": (*lead, h, d, d), "w_b": (*lead, h, d, state.n_beta)}
    for name, shape in expected.items():
        if np.shape(getattr(state, name)) != shape:
            raise ValueError(f"state.{name} must have shape {shape} to match state.w_q {np.shape(state.w_q)}, "
                             f"got {_describe(getattr(state, name))}")
    if state.n_beta not in (1, 4):
        raise ValueError(f"state.w_b must have 1 or 4 columns (n_beta), got {_describe(state.w_b)}")
    if len(lead) > 1:
        raise ValueError("state must be shared (H, d, cols) or batched (B, H, d, cols), "
                         f"got w_q {_describe(state.w_q)}")
    if num_heads is not None and h != num_heads:
        raise ValueError(f"state has {h} heads but the input has {num_heads} (x: (B, T, H, d))")
    if head_dim is not None and d != head_dim:
        raise ValueError(f"state has head_dim {d} but the input has head_dim {head_dim} (x: (B, T, H, d))")


def validate_input(x, name: str = "x", rank: int = 4, layout: str = "(B, T, H, d)") -> None:
    require_array(x, name, layout)
    if np.ndim(x) != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got {_describe(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must be floating point (float32, bfloat16, float16, float64), got {_describe(x)}")


def check_all_finite(x, name: str = "x") -> None:
    """Raise ValueError if ``x`` holds NaN/inf. Needs a concrete array (call outside ``jit``)."""
    if isinstance(x, jax.core.Tracer):
        raise ValueError(f"check_finite=True needs a concrete {name}; it was called under a jax transform "
                         "(jit/grad/vmap). Call it eagerly or pass check_finite=False.")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or inf values ({_describe(x)})")


def state_dtype(state: SRWMState, x: jax.Array):
    """The recurrence runs in at least float32 (bfloat16 inputs get a float32 state; float64 stays float64)."""
    return jnp.result_type(jnp.float32, x, *state)


def resolve_impl(impl: str, backend: str | None = None, jax_version: tuple[int, ...] | None = None) -> str:
    """What ``"auto"`` runs, the one place that decides it: ``"pallas"`` on TPUs (Mosaic TPU kernels), and on GPUs
    with a JAX older than 0.11 (which GPU kernel: :func:`acljax.srwm.pallas.default_gpu_layout`, or autotuned);
    ``"reversible"`` elsewhere: on a CPU it trains fastest at every length measured (150 to 20,000 steps) and needs
    far less memory than ``"scan"`` (benchmarks/README.md), and on GPUs from JAX 0.11 on, where Pallas' Triton
    backend is deprecated and the Mosaic GPU kernels have not yet run on a GPU (``impl="pallas"`` runs them by
    name). ``backend``: default ``jax.default_backend()``, the platform being
    traced for; ``jax_version``: default the installed one's ``jax.__version_info__``."""
    check_impl(impl)
    if impl != "auto":
        return impl
    backend = backend or jax.default_backend()
    triton_current = (jax_version or jax.__version_info__)[:2] < TRITON_DEPRECATED_FROM
    return "pallas" if backend == "tpu" or (backend == "gpu" and triton_current) else "reversible"


def check_impl(impl: str) -> None:
    if impl != "auto" and impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be 'auto' or one of {sorted(IMPLEMENTATIONS)}, got {impl!r}")


def srwm_scan(state: SRWMState, x: jax.Array, *, impl: Impl = "auto", input_softmax: bool = False,
              chunk_size: int | None = None, precision: Precision = "highest", batch_block: int | None = None,
              gpu_layout: GPULayout | None = None, check_finite: bool = False):
    """Run the self-referential weight matrix over a sequence.

    Args:
      state: W_0 shared across the batch (w_y: (H, d, d_out)) or a carried state (B, H, d, d_out).
      x: (B, T, H, d) inputs, any float dtype.
      impl: "reference" (slow Python loop), "scan" (``lax.scan``), "scan_remat" (chunked
        checkpointing), "reversible" (custom VJP reverting updates in reverse time), "pallas" (GPU/TPU
        kernels, :mod:`acljax.srwm.pallas`; Pallas interpret mode elsewhere, for tests) or "auto", the
        default of this function and of ``SRWMOptions`` (see :func:`acljax.srwm.api.resolve_impl`; every one
        computes the same function, to float rounding).
      input_softmax: apply softmax over each head's d inputs first (ICML 2022 SRWM option).
      chunk_size: steps per checkpointed chunk ("scan_remat", default about sqrt(T)) or between
        exact anchor states ("reversible": default about 64, a divisor of T where one is near, T itself up to
        128; "pallas" the same with at most 64); ignored by the others.
      precision: matmul precision of every product, "highest" (full float32), "high" or "default"
        (faster on GPUs and TPUs, less accurate; see ``acljax.srwm.step.PRECISIONS``).
      batch_block: "reversible" only: sequences taken through the whole sequence together, a divisor of B
        (default on a CPU: as many as fit half a core's L2 cache with their cotangents, see
        ``acljax.srwm.memory.default_batch_block``; elsewhere all B); ignored by the others.
      gpu_layout: "pallas" only: the GPU kernel and its programs' shape, an ``acljax.srwm.pallas.GPULayout``
        (Mosaic GPU, or Triton with its heads per program and warps; default: on a GPU the fastest for these shapes,
        measured on first use and cached, :mod:`acljax.srwm.autotune`; elsewhere
        :func:`acljax.srwm.pallas.default_gpu_layout`); ignored by the others.
      check_finite: raise if x or the state hold NaN/inf (eager calls only).

    Returns:
      ``y`` (B, T, H, d_out) in x's dtype, and the final state (B, H, ...) (in ``result_type(float32, x, state)``:
      float32, or float64 when x or the state is) that includes every step's update (pass it back in to continue
      the sequence).
    """
    validate_input(x)
    validate_state(state, num_heads=x.shape[2], head_dim=x.shape[3])
    batch, steps = x.shape[:2]
    if state.batch_shape not in ((), (batch,)):
        raise ValueError(f"state batch dims {state.batch_shape} do not match x's batch size {batch}; "
                         f"accepted: a shared state (no batch dim) or one with leading dim {batch}")
    if steps < 1 or batch < 1:
        raise ValueError(f"x must hold at least one sequence of at least one time step, got {_describe(x)}")
    impl = resolve_impl(impl)
    check_precision(precision)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if batch_block is not None and (not isinstance(batch_block, int) or batch_block < 1 or batch % batch_block):
        raise ValueError(f"batch_block must be None or a positive int that divides the batch size {batch}, "
                         f"got {batch_block!r}")
    if gpu_layout is not None and not isinstance(gpu_layout, GPULayout):
        raise ValueError(f"gpu_layout must be None or an acljax.srwm.pallas.GPULayout, got {gpu_layout!r}")
    if impl == "pallas" and gpu_layout is None:
        gpu_layout = gpu_layout_for(state, x)  # on a GPU the tuned one (measured once per shape), else None
    if check_finite:
        check_all_finite(x, "x")
        for name, w in state._asdict().items():
            check_all_finite(w, f"state.{name}")
    run = _run_implementation if impl == "reference" else _run_compiled  # a Python loop is not worth compiling
    return run(state, x, impl=impl, input_softmax=input_softmax, chunk_size=chunk_size if impl in CHUNKED else None,
               precision=precision, batch_block=batch_block if impl == "reversible" else None,
               gpu_layout=gpu_layout if impl == "pallas" else None)


def _run_implementation(state: SRWMState, x: jax.Array, *, impl: str, input_softmax: bool,
                        chunk_size: int | None, precision: Precision, batch_block: int | None,
                        gpu_layout: GPULayout | None):
    """``IMPLEMENTATIONS[impl]`` from ``state`` broadcast to the batch in the state's dtype; y in x's dtype."""
    dtype = state_dtype(state, x)
    start = SRWMState(*(w.astype(dtype) for w in broadcast_state(state, x.shape[0])))
    options = {name: value for name, value in (("chunk_size", chunk_size), ("batch_block", batch_block),
                                               ("gpu_layout", gpu_layout)) if value is not None}
    y, final = IMPLEMENTATIONS[impl](start, x, input_softmax=input_softmax, precision=precision, **options)
    return y.astype(x.dtype), final


# Compiled once per shape and option, so that eager calls (a notebook, a layer called outside jit) do not
# dispatch the scan op by op; under an outer jit it is simply inlined.
_run_compiled = jax.jit(_run_implementation,
                        static_argnames=("impl", "input_softmax", "chunk_size", "precision", "batch_block",
                                         "gpu_layout"))


def srwm_read(state: SRWMState, x: jax.Array, *, input_softmax: bool = False,
              precision: Precision = "highest") -> jax.Array:
    """Read queries against a state without changing it: each of the Q inputs gets the output it would
    get as the first step of a sequence started from ``state`` (y = x @ W_y; updates are never applied).

    Args:
      state: shared (H, d, d_out) or batched (B, H, d, d_out) fast weights.
      x: (B, Q, H, d) queries, any float dtype.
      precision: matmul precision, as in :func:`srwm_scan`.

    Returns:
      ``y`` (B, Q, H, d_out) in x's dtype.
    """
    validate_input(x, layout="(B, Q, H, d)")
    validate_state(state, num_heads=x.shape[2], head_dim=x.shape[3])
    if state.batch_shape not in ((), (x.shape[0],)):
        raise ValueError(f"state batch dims {state.batch_shape} do not match x's batch size {x.shape[0]}; "
                         f"accepted: a shared state (no batch dim) or one with leading dim {x.shape[0]}")
    check_precision(precision)
    w_y = broadcast_state(state, x.shape[0]).w_y
    xs = x.astype(state_dtype(state, x))
    if input_softmax:
        xs = jax.nn.softmax(xs, axis=-1)
    return jnp.einsum("bqhi,bhio->bqho", xs, w_y.astype(xs.dtype), precision=PRECISIONS[precision]).astype(x.dtype)
