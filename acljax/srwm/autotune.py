"""The GPU kernels' program shape (:class:`acljax.srwm.pallas.GPULayout`) picked by measurement, like Triton's
autotune: the first time ``impl="pallas"`` compiles for a GPU with no ``gpu_layout`` given, every candidate in
:data:`CANDIDATES` is timed on the forward+backward of that call's shapes (random inputs, round-robin) and the
fastest is cached per device kind and shape in a JSON file: ``$ACLJAX_GPU_LAYOUT_CACHE``, else
``~/.cache/acljax/gpu_layouts.json``. Overrides: ``srwm_scan(..., gpu_layout=GPULayout(...))`` (or
``SRWMOptions``-level code passing it), or ``ACLJAX_AUTOTUNE=0`` for the untuned default ``GPULayout()``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

from acljax.srwm.pallas import GPULayout, pallas_impl
from acljax.srwm.state import broadcast_state

#: The layouts timed, 1 to 32 heads per program times 1 to 8 warps.
CANDIDATES = tuple(GPULayout(lanes, warps) for lanes in (1, 2, 4, 8, 16, 32) for warps in (1, 2, 4, 8))
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
    compile or run is left out."""
    state = broadcast_state(state, x.shape[0])
    compiled = {}
    for layout in layouts:
        def loss(state, x, layout=layout):
            y, final = pallas_impl(state, x, gpu_layout=layout)
            return jnp.sum(y.astype(jnp.float32) ** 2) + sum(jnp.sum(w) for w in final)

        try:
            compiled[layout] = jax.jit(jax.grad(loss, (0, 1))).lower(state, x).compile()
            jax.block_until_ready(compiled[layout](state, x))
        except Exception:  # noqa: BLE001 (a shape Triton or the device cannot take: not a candidate here)
            continue
    times = {layout: [] for layout in compiled}
    for _ in range(repeats):
        for layout, program in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(program(state, x))
            times[layout].append(time.perf_counter() - start)
    return times


def tuned_gpu_layout(key: str, measure: Callable[[], dict[GPULayout, list[float]]]) -> GPULayout:
    """The cached layout of ``key``; else the fastest (median) of ``measure()``, cached; ``GPULayout()`` if
    ``measure`` timed none. The cache file is rewritten whole (a new file renamed over it); an unreadable one is
    treated as empty."""
    path = cache_path()
    cache = _read(path)
    if key in cache:
        return GPULayout(**cache[key])
    times = measure()
    if not times:
        return GPULayout()
    best = min(times, key=lambda layout: statistics.median(times[layout]))
    cache = {**_read(path), key: {"lanes": best.lanes, "num_warps": best.num_warps}}
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


def gpu_layout_for(state, x) -> GPULayout:
    """What ``impl="pallas"`` runs with no ``gpu_layout`` given: on a GPU, with autotuning enabled, the tuned layout
    of this call's shapes (measured now if not cached, outside any trace); elsewhere ``GPULayout()``."""
    if jax.default_backend() != "gpu" or not enabled():
        return GPULayout()
    device = jax.devices()[0]
    key = shape_key(device.device_kind, tuple(tuple(w.shape) for w in state), x.shape, x.dtype)

    def measure():
        with jax.ensure_compile_time_eval():  # concrete arrays and real runs, even when called while tracing
            concrete = type(state)(*(jax.random.normal(jax.random.key(i), w.shape, w.dtype) * 0.1
                                     for i, w in enumerate(state)))
            inputs = jax.random.normal(jax.random.key(9), x.shape).astype(x.dtype)
            return time_layouts(CANDIDATES, concrete, inputs, repeats=3)

    return tuned_gpu_layout(key, measure)
