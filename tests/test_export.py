"""Every training program lowers for GPU and TPU (``jax.export`` on this CPU-only jaxlib): the SRWM
implementations (the Pallas kernels included) forward and forward+backward at the paper's sizes, one
full ACL meta-training step of the paper's 2-task Conv-4 model, and one step of the sequential baselines
trainer for every method. Lowering catches unsupported ops, shapes and layouts before a user meets them
on a device (for the Mosaic GPU kernels also their register layouts, copies and shared-memory plan). What it cannot
catch: the Triton and Mosaic GPU kernels are compiled to machine code, and the Mosaic TPU kernel's vector layouts
are assigned, by the device's compiler at load time."""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export
from jax.extend.core import jaxprs_in_params

from acljax import configs
from acljax.acl.step import empty_tally
from acljax.acl.trainer import MetaTrainer
from acljax.cl.methods import METHODS, Masks
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.srwm import broadcast_state, init_state, pallas, srwm_scan
from acljax.srwm.head_tiles import TileShape
from acljax.srwm.pallas import MOSAIC_GPU_SHARED_BYTES, GPULayout

PLATFORMS = ("cuda", "tpu")
# The Pallas GPU kernel is a Triton custom call, which jax.export refuses by default because its target has
# no cross-version compatibility guarantee; TPU kernels (tpu_custom_call) are accepted as they are.
TRITON = export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")


def _lowers(fn, *args, platforms=PLATFORMS) -> str:
    """The StableHLO module of ``fn`` lowered for ``platforms`` (one module with a branch per platform)."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    exported = export.export(jitted, platforms=platforms, disabled_checks=[TRITON])(*args)
    assert exported.platforms == tuple(platforms)
    return exported.mlir_module()


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("impl", ["scan", "scan_remat", "reversible", "pallas"])
@pytest.mark.parametrize("steps", [150, 2000])
def test_srwm_scan_lowers_forward_and_backward(platform, impl, steps):  # each platform alone: its kernel only
    w0 = init_state(jax.random.key(0), 16, 16)  # the paper's H = 16 heads of d = 16
    x = jax.ShapeDtypeStruct((32, steps, 16, 16), jnp.float32)  # batch 32
    forward = _lowers(lambda w, x: srwm_scan(w, x, impl=impl), w0, x, platforms=[platform])
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl=impl)[0].sum(), argnums=(0, 1))
    backward = _lowers(grad, w0, x, platforms=[platform])
    if impl == "pallas":  # the kernels themselves, not an XLA fallback: forward; forward, recompute, backward
        kernel = KERNEL_CALLS[platform]
        assert forward.count(kernel) == 1 and backward.count(kernel) == 3


KERNEL_CALLS = {"cuda": "__gpu$xla.gpu.triton", "tpu": "tpu_custom_call"}


@pytest.mark.parametrize("steps, kernel_steps", [(5, 5), (150, 150), (131, 192)])
def test_the_kernels_pad_time_only_where_the_anchor_interval_needs_it(steps, kernel_steps):
    """reversible's anchor rule: T itself up to 128 steps, a divisor of T in [32, 128] beyond (150 = 2 x 75), else
    64 and padding (131 is prime: 3 chunks of 64)."""
    w0 = init_state(jax.random.key(0), 2, 16)
    x = jax.ShapeDtypeStruct((2, steps, 2, 16), jnp.float32)
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl="pallas")[0].sum(), argnums=(0, 1))
    module = _lowers(grad, w0, x, platforms=["cuda"])
    calls = [line for line in module.splitlines() if KERNEL_CALLS["cuda"] in line]
    assert len(calls) == 3 and all(f"(tensor<{kernel_steps}x16x1x8xf32>" in call for call in calls), calls


def test_the_gpu_layout_reaches_the_triton_kernels():
    """Another GPULayout lowers for CUDA with its warps and its grid: B*H = 512 lanes, 32 per program -> 16; the
    backward's recomputation runs T = 150's three chunks of 50 steps in parallel, the others the whole sequence."""
    w0 = init_state(jax.random.key(0), 16, 16)
    x = jax.ShapeDtypeStruct((32, 150, 16, 16), jnp.float32)
    layout = GPULayout(lanes=32, num_warps=2)
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl="pallas", gpu_layout=layout)[0].sum(), argnums=(0, 1))
    module = _lowers(grad, w0, x, platforms=["cuda"])
    calls = [line for line in module.splitlines() if KERNEL_CALLS["cuda"] in line]
    assert len(calls) == 3 and all("num_warps = 2 :" in call and "grid_x = 16 :" in call for call in calls), calls
    assert sorted(int(call.split("grid_y = ")[1].split(" ")[0]) for call in calls) == [1, 1, 3], calls



@pytest.mark.parametrize("steps, chunk, d, e_pad, d_pad", [(150, 50, 16, 64, 16), (2000, 50, 16, 64, 16),
                                                         (7, 7, 17, 128, 32)])  # d = 17: q, k, b at 24, 56, 88
def test_the_mosaic_gpu_kernels_lower_for_cuda(steps, chunk, d, e_pad, d_pad):
    """The Mosaic GPU kernels (one head per program, the state transposed, (E_pad, d_pad)) lower for
    CUDA, register layouts, copies and shared memory planned: forward one kernel; backward forward, recompute and
    backward, over (T, N, d_pad) inputs (N = B * H lanes, no padding; d_pad such that a chunk's rows copy whole)."""
    heads, batch = (16, 32) if d == 16 else (2, 2)
    w0 = init_state(jax.random.key(0), heads, d)
    x = jax.ShapeDtypeStruct((batch, steps, heads, d), jnp.float32)
    layout = GPULayout(kernel="mosaic_gpu")
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl="pallas", gpu_layout=layout)[0].sum(), argnums=(0, 1))
    forward = _lowers(lambda w, x: srwm_scan(w, x, impl="pallas", gpu_layout=layout), w0, x, platforms=["cuda"])
    backward = _lowers(grad, w0, x, platforms=["cuda"])
    assert forward.count("@mosaic_gpu_v2(") == 1 and backward.count("@mosaic_gpu_v2(") == 3
    assert "__gpu$xla.gpu.triton" not in backward
    calls = [line for line in backward.splitlines() if "@mosaic_gpu_v2(" in line]
    lanes = batch * heads
    assert all(f"tensor<{steps}x{lanes}x{d_pad}xf32>" in call for call in calls), calls
    assert any(f"tensor<{steps // chunk}x{lanes}x{e_pad}x{d_pad}xf32>" in call for call in calls), calls  # anchors
    # built with plgpu.kernel (an mpmd_map), not pallas_call, which is deprecated for Mosaic GPU kernels (its warning
    # shows only the first time a process lowers one, so the program is inspected instead)
    calls = _primitives(jax.make_jaxpr(grad)(w0, jnp.zeros(x.shape)).jaxpr)
    assert calls.count("mpmd_map") == 3 and "pallas_call[mosaic_gpu]" not in calls, calls


def _primitives(jaxpr) -> list[str]:
    """Every primitive of a jaxpr and its sub-jaxprs; a pallas_call named with its compiler params' backend."""
    names = []
    for eqn in jaxpr.eqns:
        params = eqn.params.get("compiler_params")
        backend = type(params).__module__.split(".")[-2] if eqn.primitive.name == "pallas_call" else ""
        names.append(f"pallas_call[{backend}]" if backend else eqn.primitive.name)
        for sub in jaxprs_in_params(eqn.params):
            names += _primitives(sub)
    return names


@pytest.mark.parametrize("d, chunk", [(32, 64), (48, 64), (48, 32), (64, 8)])  # each side of the limit, twice
def test_the_mosaic_gpu_shared_memory_estimate_agrees_with_mosaic_gpu(d, chunk):
    """TileShape.shared_bytes within MOSAIC_GPU_SHARED_BYTES exactly where Mosaic GPU plans the kernels into
    shared memory (it refuses the others while lowering)."""
    w0 = broadcast_state(init_state(jax.random.key(0), 2, d), 2)
    xs = jax.ShapeDtypeStruct((128, 2, 2, d), jnp.float32)  # time-major, as the kernels' wiring takes it
    run = functools.partial(pallas._run, "mosaic_gpu", False, chunk, GPULayout(kernel="mosaic_gpu"))  # unchecked
    grad = jax.grad(lambda w, x: run(w, x)[0].sum(), argnums=(0, 1))
    fits = TileShape(d, d, 1, chunk).shared_bytes() <= MOSAIC_GPU_SHARED_BYTES
    try:
        _lowers(grad, w0, xs, platforms=["cuda"])
        lowered = True
    except ValueError as error:
        assert "exceeds available shared memory" in str(error)
        lowered = False
    assert lowered == fits


def test_a_gpu_layouts_chunk_sets_the_mosaic_gpu_kernels_time_blocks():
    """GPULayout.chunk reaches the kernels: 6 anchors of 25 steps at T = 150 instead of the anchor rule's 3 (which
    of chunk_size and GPULayout.chunk wins: test_srwm_pallas.py)."""
    w0 = init_state(jax.random.key(0), 2, 16)
    x = jax.ShapeDtypeStruct((2, 150, 2, 16), jnp.float32)
    layout = GPULayout(kernel="mosaic_gpu", chunk=25)
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl="pallas", gpu_layout=layout)[0].sum(), argnums=(0, 1))
    calls = [line for line in _lowers(grad, w0, x, platforms=["cuda"]).splitlines() if "@mosaic_gpu_v2(" in line]
    anchors = {int(n) for call in calls for n in re.findall(r"tensor<(\d+)x4x\d+x\d+xf32>", call)}
    assert anchors == {6}, calls  # (d_pad 32: 25 steps of 16 floats would not copy whole)


# "scan" for both platforms in one module; each kernel alone (a two-platform module with the Pallas kernels fails:
# jax 0.10.2 lowers the GPU kernel's pallas_call with the TPU rule too, which refuses its GPU compiler params)
@pytest.mark.parametrize("impl, platforms", [("scan", PLATFORMS), *(("pallas", (p,)) for p in PLATFORMS),
                                             ("pallas:mosaic_gpu", ("cuda",))])
def test_the_paper_acl_meta_training_step_lowers(impl, platforms, monkeypatch):
    config = configs.load("acl_paper_2task")  # Conv-4, 2 x 5-way 15-shot + first shots, batch 32, warm-up Adam
    if impl == "pallas:mosaic_gpu":  # the default on a Hopper GPU; another batch size, so that no trace is reused
        impl = "pallas"
        monkeypatch.setattr(pallas, "default_gpu_layout", lambda: GPULayout(kernel="mosaic_gpu"))
        config = configs.override(config, ["batch_size=8"])
    config = configs.override(config, [f"model.srwm.impl={impl!r}"])  # on a GPU/TPU, "auto" means "pallas"
    learner = MetaTrainer(config, (32, 32, 3))
    length = sum(task.length for task in config.tasks)
    batch = (jax.ShapeDtypeStruct((config.batch_size, length, 32, 32, 3), jnp.float32),
             jax.ShapeDtypeStruct((config.batch_size, length), jnp.int32),
             jax.ShapeDtypeStruct((config.batch_size, length), jnp.int32))
    opt_state = jax.eval_shape(learner.tx.init, learner.params)
    tally = empty_tally(len(learner.objectives[0].terms))
    module = _lowers(learner.train_steps[0], learner.params, opt_state, learner.rest, tally, batch,  # what acljax
                     jnp.ones(2, jnp.float32), jax.random.key(0), jnp.int32(1), jnp.int32(0),  # train compiles
                     platforms=platforms)
    if impl == "pallas":
        kernel = "@mosaic_gpu_v2(" if "mosaic" in str(pallas.default_gpu_layout()) else KERNEL_CALLS[platforms[0]]
        assert kernel in module


@pytest.mark.parametrize("name", METHODS)
def test_a_sequential_baseline_step_lowers(name):
    small = {"strength": 1.0, "memory_size": 64, "memory_batch": 16}  # for the methods that have these fields
    kind = METHODS[name]
    method = kind(**{key: value for key, value in small.items() if key in {f.name for f in dataclasses.fields(kind)}})
    config = SequentialConfig(method=method, batch_size=32)
    learner = SequentialLearner(config, 10, (28, 28, 1), 0.5, 0.25, progress=False)
    learner.reset([0, 1, 2])
    x = np.zeros((3, 32, 28, 28, 1), np.float32)
    y = np.zeros((3, 32), np.int32)
    masks = Masks(jnp.ones(10, bool), jnp.ones((10, 10), bool), jnp.zeros(10, bool))
    keys = learner._keys(jnp.arange(3), 0, 0)
    args = (learner.params, learner.opt_state, learner.memory, x, y, masks, keys, jnp.int32(0))
    exported = export.export(learner._step, platforms=PLATFORMS)(*args)  # the vmapped, jitted step it runs
    assert exported.platforms == PLATFORMS
