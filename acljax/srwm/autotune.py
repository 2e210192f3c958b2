"""The GPU kernel and its program shape (:class:`acljax.srwm.pallas.GPULayout`) picked by measurement, like Triton's
autotune: the first time ``impl="pallas"`` compiles for a GPU with no ``gpu_layout`` given, every candidate in
:data:`CANDIDATES` (Triton's program shapes and the Mosaic GPU kernel) is timed on the forward+backward of that
call's shapes (random inputs, round-robin), then the fastest of those whose results agree with ``"reversible"``
at each chunk length of :data:`CHUNKS` (:func:`sweep`), and the fastest of that round is cached per device kind and
shape in a JSON file: ``$ACLJAX_GPU_LAYOUT_CACHE``, else
``~/.cache/acljax/gpu_layouts.json``. Overrides: ``srwm_scan(..., gpu_layout=GPULayout(...))``, or
``ACLJAX_AUTOTUNE=0`` for the untuned :func:`acljax.srwm.pallas.default_gpu_layout`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from acljax.srwm.memory import reversible_impl
from acljax.srwm.pallas import GPULayout, pallas_impl
from acljax.srwm.state import broadcast_state

#: The layouts timed, Triton's 1 to 32 heads per program times 1 to 8 warps and the Mosaic GPU kernel.
CANDIDATES = (*(GPULayout(lanes, warps) for lanes in (1, 2, 4, 8, 16, 32) for warps in (1, 2, 4, 8)),
              GPULayout(kernel="mosaic_gpu"))
#: Chunk lengths (``GPULayout.chunk``) timed for the fastest candidate, beside its default (the anchor rule).
CHUNKS = (16, 32, 64)
#: A candidate whose forward+backward differs from "reversible"'s by more than this (relative to the largest
#: value) is wrong, not rounded differently (float32 paths agree to about 1e-5 at these lengths), and left out.
AGREEMENT = 1e-2
CACHE_VARIABLE, SWITCH_VARIABLE = "ACLJAX_GPU_LAYOUT_CACHE", "ACLJAX_AUTOTUNE"


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "acljax" / "gpu_layouts.json")


def enabled() -> bool:
    """False when ``$ACLJAX_AUTOTUNE`` is 0 / false / no / off; ValueError for another value than those or 1 /
    true / yes / on."""
    value = os.environ.get(SWITCH_VARIABLE, "1").strip().lower()
    if value not in ("0", "false", "no", "off", "1", "true", "yes", "on"):
        raise ValueError(f"{SWITCH_VARIABLE} must be 0 or 1 (or false/true, no/yes, off/on), got {value!r}")
    return value in ("1", "true", "yes", "on")


def shape_key(device_kind: str, state_shapes: tuple, x_shape: tuple, dtype) -> str:
    """The cache key of one call: the device kind, the state blocks' and x's shapes, x's dtype."""
    return f"{device_kind}|{state_shapes}|{tuple(x_shape)}|{jnp.dtype(dtype).name}"


def time_layouts(layouts, state, x, repeats: int) -> dict[GPULayout, list[float]]:
    """Seconds of ``repeats`` runs each of the compiled forward+backward of the Pallas kernels per layout,
    timed round-robin after a warm-up (so drift in the device's speed hits them alike). A layout that fails to
    compile or run is left out, and so is one whose gradients differ from ``"reversible"``'s by more than
    :data:`AGREEMENT` (with a warning: a kernel that is wrong on this device)."""
    state = broadcast_state(state, x.shape[0])

    def gradients(**options):
        def loss(state, x):
            y, final = (pallas_impl(state, x, **options) if options else reversible_impl(state, x))
            return jnp.sum(y.astype(jnp.float32) ** 2) + sum(jnp.sum(w) for w in final)

        return jax.jit(jax.grad(loss, (0, 1)))

    expected = gradients()(state, x)
    compiled = {}
    for layout in layouts:
        try:
            compiled[layout] = gradients(gpu_layout=layout).lower(state, x).compile()
            error = relative_error(compiled[layout](state, x), expected)
        except Exception:  # noqa: BLE001 (a shape Triton or the device cannot take: not a candidate here)
            compiled.pop(layout, None)
            continue
        if not error <= AGREEMENT:
            warnings.warn(f"acljax autotune: {layout} left out: its gradients differ from reversible's by {error:.1e} "
                          f"(relative; allowed {AGREEMENT:g}) on {jax.devices()[0].device_kind}", stacklevel=2)
            del compiled[layout]
    times = {layout: [] for layout in compiled}
    for _ in range(repeats):
        for layout, program in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(program(state, x))
            times[layout].append(time.perf_counter() - start)
    return times


def sweep(state, x, repeats: int, candidates=CANDIDATES, chunks=CHUNKS) -> list[dict[GPULayout, list[float]]]:
    """The autotuning measurement, two rounds of :func:`time_layouts`: every one of ``candidates`` (default
    chunk), then the fastest of them again beside itself at each of ``chunks``; the rounds that timed anything
    (the last one decides)."""
    first = time_layouts(candidates, state, x, repeats)
    if not first:
        return []
    best = fastest(first)
    second = time_layouts([best, *(dataclasses.replace(best, chunk=chunk) for chunk in chunks)], state, x, repeats)
    return [first, second] if second else [first]


def fastest(times: dict[GPULayout, list[float]]) -> GPULayout:
    """The layout of the smallest median time."""
    return min(times, key=lambda layout: statistics.median(times[layout]))


def relative_error(got, expected) -> float:
    """The largest absolute difference over the leaves of two pytrees, each leaf's relative to its largest entry in
    ``expected`` (in float64, NumPy)."""
    pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64))
             for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected))]
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def tuned_gpu_layout(key: str, measure: Callable[[], dict[GPULayout, list[float]]]) -> GPULayout | None:
    """The cached layout of ``key``; else the fastest (median) of ``measure()``, cached; None (the default layout)
    if ``measure`` timed none. The cache file is rewritten whole (a
    new file renamed over it); an unreadable one is treated as empty."""
    path = cache_path()
    cache = _read(path)
    if key in cache:
        return GPULayout(**cache[key])
    times = measure()
    if not times:
        return None
    best = fastest(times)
    cache = {**_read(path), key: dataclasses.asdict(best)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as out:
        json.dump(cache, out, indent=1, sort_keys=True)
    os.replace(out.name, path)
    return best


def _read(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def gpu_layout_for(state, x) -> GPULayout | None:
    """What ``impl="pallas"`` runs with no ``gpu_layout`` given: on a GPU, with autotuning enabled, the tuned layout
    of this call's shapes (measured now if not cached, outside any trace); else None, the default
    (:func:`acljax.srwm.pallas.default_gpu_layout`, fitted to the call by :func:`~acljax.srwm.pallas.pallas_impl`)."""
    if jax.default_backend() != "gpu" or not enabled():
        return None
    device = jax.devices()[0]
    key = shape_key(device.device_kind, tuple(tuple(w.shape) for w in state), x.shape, x.dtype)

    def measure():
        with jax.ensure_compile_time_eval():  # concrete arrays and real runs, even when called while tracing
            concrete = type(state)(*(jax.random.normal(jax.random.key(i), w.shape, w.dtype) * 0.1
                                     for i, w in enumerate(state)))
            inputs = jax.random.normal(jax.random.key(9), x.shape).astype(x.dtype)
            rounds = sweep(concrete, inputs, repeats=3)
            return rounds[-1] if rounds else {}

    return tuned_gpu_layout(key, measure)
