"""The Pallas kernels in interpret mode against the reference loop: every backend's arrays, grid and kernel body
(Triton: one program per lane block over the whole sequence; TPU: time blocks carried in the resident output
block; Mosaic GPU: one head per program, its matrix transposed, time blocks likewise, loads without their register
layouts), and the TPU kernels once more in the TPU interpreter, which models the HBM <-> VMEM block copies, two
cores splitting the parallel axis and uninitialised memory as NaN. Lowering for CUDA/TPU: tests/test_export.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu
from jax.test_util import check_grads

from acljax.srwm import broadcast_state, init_state, pallas, srwm_scan
from acljax.srwm.api import resolve_impl
from acljax.srwm.head_tiles import TileShape
from acljax.srwm.pallas import LAYOUTS, GPULayout, _LaneGeometry, default_gpu_layout, pallas_impl
from acljax.srwm.reference import reference_impl

TPU_INTERPRETER = pltpu.InterpretParams(num_cores_or_threads=2, uninitialized_memory="nan")


def _loss(y, final):
    return jnp.sum(jnp.sin(y)) + sum(jnp.sum(jnp.cos(w)) for w in final)


def _outputs_and_gradients(run, state, x):
    """(y, final) and the gradients of a loss of both w.r.t. the (batched) start state and x."""
    def loss(s, x):
        out = run(s, x)
        return _loss(*out), out

    grads, out = jax.grad(loss, (0, 1), has_aux=True)(state, x)
    return out, grads


def _reference(state, x, input_softmax=False):
    return reference_impl(state, x.astype(state.w_y.dtype), input_softmax=input_softmax)


def _assert_close(got, expected, rtol):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=rtol, atol=rtol * float(jnp.abs(b).max()))


CASES = {  # (B, T, H, d, d_out, n_beta, input_softmax, chunk_size)
    "T=1": (2, 1, 3, 4, 4, 4, False, 8),
    "T not a multiple of the chunk": (2, 13, 3, 4, 4, 4, False, 4),
    "one learning rate, input softmax, the default anchor interval": (2, 9, 2, 4, 4, 1, True, None),  # one chunk
    "d_out != d, neither a power of two (padded for Triton)": (3, 10, 2, 6, 5, 4, False, 4),
    "more lanes than one TPU block": (9, 6, 16, 4, 4, 4, False, 4),  # B*H = 144 -> two 128-lane blocks
    "d = 17 (padded to 32 for Triton and Mosaic GPU), prime T, chunks of 3": (2, 7, 2, 17, 3, 4, False, 3),
}


@functools.cache
def _case(name):
    """Inputs (a carried, batched start state) and the reference's outputs and gradients, once per case."""
    batch, steps, heads, d, d_out, n_beta, input_softmax, chunk = CASES[name]
    state = init_state(jax.random.key(0), heads, d, d_out=d_out, n_beta=n_beta, q_init_scale=1.0)
    state = jax.tree.map(lambda w: w + 0.1 * jax.random.normal(jax.random.key(2), (batch, *w.shape)), state)
    x = jax.random.normal(jax.random.key(1), (batch, steps, heads, d))
    expected = jax.jit(_outputs_and_gradients, static_argnums=0)(
        lambda s, x: _reference(s, x, input_softmax), state, x)
    return state, x, expected


@pytest.mark.parametrize("interpret, case", [(layout, case) for layout in LAYOUTS for case in CASES  # no lane blocks
                                             if (layout, case) != ("mosaic_gpu", "more lanes than one TPU block")])
def test_kernel_matches_the_reference(interpret, case):  # in Mosaic GPU's one lane per program
    state, x, expected = _case(case)
    input_softmax, chunk = CASES[case][-2:]
    got = jax.jit(_outputs_and_gradients, static_argnums=0)(
        lambda s, x: pallas_impl(s, x, interpret=interpret, chunk_size=chunk, input_softmax=input_softmax), state, x)
    _assert_close(got, expected, rtol=2e-5)


def test_tpu_layout_in_the_tpu_interpreter():
    state = broadcast_state(init_state(jax.random.key(0), 3, 8, n_beta=4, q_init_scale=1.0), 2)
    x = jax.random.normal(jax.random.key(1), (2, 5, 3, 8))  # two time blocks of 4, the last one padded
    got = jax.jit(_outputs_and_gradients, static_argnums=0)(
        lambda s, x: pallas_impl(s, x, interpret=TPU_INTERPRETER, chunk_size=4), state, x)
    _assert_close(got, _outputs_and_gradients(_reference, state, x), rtol=2e-5)


def test_two_thousand_steps_stay_accurate():
    """Reverting 2000 updates in float32 from anchors every 64 steps: the kernel's gradient is as close to
    a float64 computation as the float32 scan's."""
    state = init_state(jax.random.key(0), 4, 8, q_init_scale=1.0)
    x = 0.3 * jax.random.normal(jax.random.key(1), (2, 2000, 4, 8))

    def grads(impl, s, x):
        return jax.jit(jax.grad(lambda s, x: _loss(*srwm_scan(s, x, impl=impl)), (0, 1)))(s, x)

    with jax.enable_x64(True):
        truth = grads("scan", jax.tree.map(lambda a: a.astype(jnp.float64), state), x.astype(jnp.float64))
    truth = jax.tree.map(np.asarray, truth)
    errors = {impl: max(float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())
                        for a, b in zip(jax.tree.leaves(grads(impl, state, x)), jax.tree.leaves(truth)))
              for impl in ("scan", "pallas")}  # "pallas" on this CPU: the TPU layout in interpret mode
    assert errors["scan"] < 1e-3
    assert errors["pallas"] < 2 * errors["scan"] + 1e-6, errors


def test_bfloat16_inputs_give_bfloat16_outputs_from_a_float32_state():
    state = init_state(jax.random.key(0), 2, 8)
    x = jax.random.normal(jax.random.key(1), (2, 7, 2, 8)).astype(jnp.bfloat16)
    y, final = srwm_scan(state, x, impl="pallas")
    assert y.dtype == jnp.bfloat16 and final.w_y.dtype == jnp.float32
    y_ref, final_ref = srwm_scan(state, x, impl="reference")  # the reference casts the same way
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32), rtol=1e-2, atol=1e-2)
    _assert_close(final, final_ref, rtol=1e-5)
    dx, dx_ref = (jax.grad(lambda x, impl=impl: srwm_scan(state, x, impl=impl)[0].astype(jnp.float32).sum())(x)
                  for impl in ("pallas", "reference"))
    assert dx.dtype == jnp.bfloat16
    # float32 inside, one rounding to bfloat16 at the end (eps 2^-8): within about two bfloat16 steps
    dx_ref = np.asarray(dx_ref, np.float32)
    np.testing.assert_allclose(np.asarray(dx, np.float32), dx_ref, rtol=1e-2, atol=2 * 2 ** -8 * np.abs(dx_ref).max())


@pytest.mark.parametrize("interpret", LAYOUTS)
def test_gradients_match_finite_differences(x64, interpret):
    state = broadcast_state(init_state(jax.random.key(0), 2, 3, d_out=2, q_init_scale=1.0, dtype=jnp.float64), 2)
    x = jax.random.normal(jax.random.key(1), (2, 7, 2, 3), jnp.float64)
    loss = jax.jit(lambda s, x: _loss(*pallas_impl(s, x, interpret=interpret, chunk_size=3)))
    check_grads(loss, (state, x), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_segments_continue_from_the_returned_state():
    state = init_state(jax.random.key(0), 2, 4)
    x = jax.random.normal(jax.random.key(1), (2, 12, 2, 4))
    y, final = srwm_scan(state, x, impl="pallas")
    y1, mid = srwm_scan(state, x[:, :5], impl="pallas")
    y2, end = srwm_scan(mid, x[:, 5:], impl="pallas")
    _assert_close((jnp.concatenate([y1, y2], 1), end), (y, final), rtol=1e-5)


def test_auto_picks_the_kernels_on_tpus_and_on_gpus_while_triton_is_not_deprecated():
    for version in [(0, 10, 2), (0, 11, 0), (0, 12, 1), (1, 0)]:
        assert resolve_impl("auto", backend="tpu", jax_version=version) == "pallas"
        assert resolve_impl("auto", backend="cpu", jax_version=version) == "reversible"
        assert resolve_impl("pallas", backend="gpu", jax_version=version) == "pallas"  # by name, on any
    assert resolve_impl("auto", backend="gpu", jax_version=(0, 10, 2)) == "pallas"
    for deprecated in [(0, 11, 0), (0, 12, 1), (1, 0)]:
        assert resolve_impl("auto", backend="gpu", jax_version=deprecated) == "reversible"


def test_importing_acljax_does_not_import_the_triton_backend():
    """Deprecated from JAX 0.11: only a GPU kernel being built imports it."""
    import subprocess
    import sys

    code = "import sys, acljax, acljax.srwm.pallas; print('jax.experimental.pallas.triton' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("lanes, expected", [(1, 8), (8, 8), (9, 16), (128, 128), (129, 256), (512, 512)])
def test_lanes_are_padded_to_whole_programs(lanes, expected):
    def padded(backend, per_program):
        return _LaneGeometry(backend, 4, 4, 1, per_program).padded_lanes(lanes)

    assert padded("triton", 8) == expected
    with_32 = {1: 32, 8: 32, 9: 32, 128: 128, 129: 256, 512: 512}  # 32 lanes per GPU program: to 32 up to 128
    assert padded("triton", 32) == with_32[lanes]
    assert padded("tpu", 128) == (lanes if lanes <= 128 else expected)  # up to 128: one program of all lanes


def test_another_gpu_layout_computes_the_same():
    """One lane per program (B*H = 6 lanes: a grid of 6 programs, against 1 of 8 lanes by default) in the GPU
    layout's interpret mode: the same outputs and gradients as the reference."""
    layout = GPULayout(lanes=1, num_warps=1)
    case = "d_out != d, neither a power of two (padded for Triton)"
    state, x, expected = _case(case)
    chunk = CASES[case][-1]
    got = jax.jit(_outputs_and_gradients, static_argnums=0)(
        lambda s, x: pallas_impl(s, x, interpret="triton", chunk_size=chunk, gpu_layout=layout), state, x)
    _assert_close(got, expected, rtol=2e-5)


@pytest.mark.parametrize("lanes, num_warps", [(3, 4), (0, 4), (256, 4), (True, 4), (8, 64), (8, 2.0)])
def test_bad_gpu_layouts_are_refused(lanes, num_warps):
    name = "lanes" if lanes != 8 else "num_warps"
    with pytest.raises(ValueError, match=f"GPULayout.{name} must be a power of two from 1 to"):
        GPULayout(lanes=lanes, num_warps=num_warps)
    with pytest.raises(ValueError, match="gpu_layout must be None or an acljax.srwm.pallas.GPULayout, got 8"):
        srwm_scan(init_state(jax.random.key(0), 2, 4), jnp.ones((1, 3, 2, 4)), impl="pallas", gpu_layout=8)


@pytest.mark.parametrize("chunk", [0, -2, 2.0, "16"])
def test_bad_gpu_chunks_are_refused(chunk):
    with pytest.raises(ValueError, match=f"GPULayout.chunk must be None or a positive int, got {chunk!r}"):
        GPULayout(chunk=chunk)


def test_the_mosaic_gpu_kernel_has_one_shape():
    assert (GPULayout(kernel="mosaic_gpu").lanes, GPULayout(kernel="mosaic_gpu").num_warps) == (1, 4)
    with pytest.raises(ValueError, match="GPULayout.lanes of the mosaic_gpu kernel .* must be 1, got 8"):
        GPULayout(8, kernel="mosaic_gpu")
    with pytest.raises(ValueError, match="GPULayout.kernel must be one of \\('triton', 'mosaic_gpu'\\), got 'cuda'"):
        GPULayout(kernel="cuda")


class _Device:
    def __init__(self, capability, device_kind="a GPU"):
        self.compute_capability, self.device_kind = capability, device_kind


@pytest.mark.parametrize("capability, kernel", [("9.0", "mosaic_gpu"), ("10.0", "mosaic_gpu"), ("10.3", "mosaic_gpu"),
                                                ("12.1", "triton"), ("8.9", "triton"), ("8.0", "triton"),
                                                ("gfx90a", "triton"), (None, "triton")])
def test_hopper_and_data_centre_blackwell_run_mosaic_gpu_by_default(capability, kernel):
    assert default_gpu_layout(_Device(capability)).kernel == kernel


def test_with_no_gpu_the_default_is_triton(monkeypatch):
    def no_gpu(backend=None):
        raise RuntimeError(f"Unknown backend {backend}")

    monkeypatch.setattr(pallas.jax, "devices", no_gpu)
    assert default_gpu_layout() == GPULayout()


@pytest.mark.parametrize("d_out, d, n_beta, chunk", [(5, 17, 1, 13), (16, 16, 4, 50), (3, 6, 4, 7), (1, 1, 1, 1)])
def test_the_mosaic_gpu_blocks_start_aligned_and_rows_copy_whole(d_out, d, n_beta, chunk):
    """Rows and columns move between registers and shared memory 8 floats at a time and chunks between global and
    shared memory 128 bytes at a time: every block starts at a multiple of 8 and a chunk of rows is a whole number of
    32-float units; the blocks do not overlap and fit E_pad, a multiple of 64."""
    shape = TileShape(d_out, d, n_beta, chunk)
    q, k, b = shape.starts
    assert all(start % 8 == 0 for start in shape.starts) and shape.d_pad % 8 == 0 and chunk * shape.d_pad % 32 == 0
    assert d_out <= q and q + d <= k and k + d <= b and b + n_beta <= shape.e_pad and shape.e_pad % 64 == 0
    assert shape.d_pad >= d and k - q == b - k == shape.d_pad


def _on_a_gpu(monkeypatch, capability):
    monkeypatch.setattr(pallas.jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(pallas.jax, "devices", lambda *a: [_Device(capability, "NVIDIA A100")])


def test_the_mosaic_gpu_kernel_falls_back_to_triton_by_default_and_refuses_when_asked_for(monkeypatch):
    """What cannot run on Mosaic GPU: a float64 state, blocks beyond 256 entries along an axis or beyond shared
    memory at every chunk length, a GPU before Hopper (checked where a GPU is in use). By default Triton runs
    instead; asked for by name, one error says why."""
    runnable = pallas._runnable_gpu_layout
    mosaic = GPULayout(kernel="mosaic_gpu")
    small, wide = init_state(jax.random.key(0), 2, 16), init_state(jax.random.key(0), 2, 64)
    assert runnable(mosaic, False, small, 150, None) == (mosaic, 50)
    assert runnable(GPULayout(kernel="mosaic_gpu", chunk=25), False, small, 150, None)[1] == 25
    assert runnable(GPULayout(kernel="mosaic_gpu", chunk=25), False, small, 150, 30)[1] == 30  # chunk_size wins
    assert runnable(GPULayout(chunk=25), False, small, 150, None) == (GPULayout(chunk=25), 25)  # Triton's too
    # d = 48 (E_pad 192, d_pad 48): 4 x (64 x (4 x 48 + 3 x 192) + 3 x 192 x 48 + 192) + 2048 = 310,016 bytes at
    # chunk 64, 211,712 at 32
    assert runnable(mosaic, False, init_state(jax.random.key(0), 2, 48), 128, None) == (mosaic, 32)
    assert runnable(mosaic, False, wide, 150, None) == (GPULayout(), 50)
    with jax.enable_x64(True):
        double = jax.tree.map(lambda w: w.astype(jnp.float64), small)
        assert runnable(mosaic, False, double, 150, None) == (GPULayout(), 50)
        with pytest.raises(ValueError, match="gpu_layout.kernel='mosaic_gpu' computes in float32, the state is "
                                             "float64: use GPULayout\\(kernel='triton'\\) or impl='reversible'"):
            runnable(mosaic, True, double, 150, None)
    # d = 64 at chunk 10: E_pad 256, d_pad 64 (10 rows of 16 floats would not copy whole), 4 x (10 x (256 + 768)
    # + 3 x 256 x 64 + 256) + 2048 bytes
    with pytest.raises(ValueError, match="needs 240,640 bytes of shared memory at d=64, d_out=64, chunk 10; at most"):
        runnable(mosaic, True, wide, 150, 10)
    with pytest.raises(ValueError, match="copies blocks of at most 256 entries along each axis, got \\(E_pad, d_pad\\) "
                                         "\\(320, 16\\) \\(d=16, d_out=256\\) and chunk 50"):  # 256 + 16 + 16 + 16 + 1
        runnable(mosaic, True, init_state(jax.random.key(0), 2, 16, d_out=256), 150, None)
    assert runnable(mosaic, False, init_state(jax.random.key(0), 2, 16, d_out=256), 150, None) == (GPULayout(), 50)
    _on_a_gpu(monkeypatch, "8.0")
    with pytest.raises(ValueError, match="needs a CUDA GPU of compute capability 9.x or 10.x, this one is NVIDIA A100"):
        runnable(mosaic, True, small, 150, None)
    assert runnable(mosaic, False, small, 150, None) == (GPULayout(), 50)


def test_bad_interpret_option():
    state = broadcast_state(init_state(jax.random.key(0), 2, 4), 1)
    with pytest.raises(ValueError, match="interpret must be None, one of \\('triton', 'mosaic_gpu', 'tpu'\\)"):
        pallas_impl(state, jnp.ones((1, 3, 2, 4)), interpret="gpu")
