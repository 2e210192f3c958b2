"""Memory-saving implementations against the reference loop and float64."""

import functools
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from acljax.srwm import broadcast_state, init_state, srwm_scan
from acljax.srwm.api import resolve_impl

FAST = ["scan", "scan_remat", "reversible"]


def _loss(state, x, impl, **kw):
    y, final = srwm_scan(state, x, impl=impl, **kw)
    return jnp.sum(jnp.sin(y)) + sum(jnp.sum(jnp.cos(w)) for w in final)


def _max_rel_err(a_tree, b_tree):
    return max(float(jnp.abs(a - b).max() / jnp.abs(b).max())
               for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree)))


@pytest.mark.xdist_group("srwm_memory_reference")  # one worker: the reference of a case is computed once
@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("steps, chunk_size, n_beta, input_softmax, d", [
    (11, 4, 4, False, 4),   # chunk does not divide T
    (11, 4, 1, True, 4),    # padding after the input softmax stays a no-op
    (1, 3, 4, False, 4),    # T = 1
    (12, None, 4, False, 4),  # default chunk size
    (13, 5, 4, False, 17),  # prime T, d = 17
])
def test_outputs_and_gradients_match_reference(impl, steps, chunk_size, n_beta, input_softmax, d):
    state, x, (outputs_ref, grads_ref) = _reference_case(steps, n_beta, input_softmax, d)
    kw = dict(chunk_size=chunk_size, input_softmax=input_softmax)
    outputs = jax.jit(lambda s, x: srwm_scan(s, x, impl=impl, **kw))(state, x)
    assert _max_rel_err(outputs, outputs_ref) < 1e-5
    grads = jax.jit(jax.grad(lambda s, x: _loss(s, x, impl, **kw), (0, 1)))(state, x)
    assert _max_rel_err(grads, grads_ref) < 1e-5


@functools.cache
def _reference_case(steps, n_beta, input_softmax, d):
    """Inputs and the reference loop's outputs and gradients, once per case (every implementation is checked
    against the same; the reference takes no chunk size)."""
    state = init_state(jax.random.key(0), 2, d, d_out=5, n_beta=n_beta, q_init_scale=1.0)
    x = jax.random.normal(jax.random.key(1), (2, steps, 2, d))
    outputs = srwm_scan(state, x, impl="reference", input_softmax=input_softmax)
    return state, x, (outputs, jax.grad(_loss, (0, 1))(state, x, "reference", input_softmax=input_softmax))


@pytest.mark.parametrize("impl", ["scan_remat", "reversible"])
def test_memory_saving_gradients_match_finite_differences(x64, impl):
    state = broadcast_state(init_state(jax.random.key(0), 2, 3, q_init_scale=1.0, dtype=jnp.float64), 2)
    x = jax.random.normal(jax.random.key(1), (2, 7, 2, 3), jnp.float64)
    check_grads(lambda s, x: _loss(s, x, impl, chunk_size=3), (state, x), order=1, modes=["rev"],
                atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("steps", [128, 2000])  # one chunk of 128, the longest stretch reverted without an
def test_reversible_stays_accurate_over_thousands_of_steps(steps):  # anchor; 25 chunks of 80
    """Over T = 2000 the reverted states would drift if reverting lost precision; the float32 reversible
    gradient must be as close to a float64 computation as float32 scan is."""
    state = init_state(jax.random.key(0), 4, 8, q_init_scale=1.0)
    x = 0.3 * jax.random.normal(jax.random.key(1), (2, steps, 4, 8))
    grad = jax.jit(jax.grad(_loss, (0, 1)), static_argnums=2)
    scan_grads, reversible_grads = grad(state, x, "scan"), grad(state, x, "reversible")
    with jax.enable_x64(True):
        truth = grad(jax.tree.map(lambda a: a.astype(jnp.float64), state), x.astype(jnp.float64), "scan")
        scan_error = _max_rel_err(scan_grads, truth)
        reversible_error = _max_rel_err(reversible_grads, truth)
    assert scan_error < 1e-3
    assert reversible_error < 2 * scan_error + 1e-6
    y_rev, final_rev = srwm_scan(state, x, impl="reversible")
    y, final = srwm_scan(state, x, impl="scan")
    assert _max_rel_err((y_rev, final_rev), (y, final)) < 1e-6  # same forward computation


def test_reversible_in_batch_blocks_matches_reference():
    """Blocks of sequences run one after another; each sequence's own start state (carried, not shared)
    must travel with its inputs, and the gradients must come back to the right sequences."""
    start = jax.tree.map(lambda w: w + 0.1 * jax.random.normal(jax.random.key(2), w.shape),
                         broadcast_state(init_state(jax.random.key(0), 2, 4, d_out=5, q_init_scale=1.0), 4))
    x = jax.random.normal(jax.random.key(1), (4, 5, 2, 4))  # 3 anchor chunks of 2 steps, the last padded

    def loss(impl, state, x):
        y, final = impl(state, x)
        return jnp.sum(jnp.sin(y)) + sum(jnp.sum(jnp.cos(w)) for w in final)

    reference = functools.partial(srwm_scan, impl="reference")
    expected = reference(start, x), jax.jit(jax.grad(functools.partial(loss, reference), (0, 1)))(start, x)
    for batch_block in (1, 2):
        blocked = functools.partial(srwm_scan, impl="reversible", chunk_size=2, batch_block=batch_block)
        assert _max_rel_err(jax.jit(blocked)(start, x), expected[0]) < 1e-5
        assert _max_rel_err(jax.jit(jax.grad(functools.partial(loss, blocked), (0, 1)))(start, x), expected[1]) < 1e-5


@pytest.mark.parametrize("batch, sequence_bytes, budget, expected", [
    (16, 106_496, 524_288, 4),  # B=16, H=16, d=16 on a 1 MiB L2: 104 KiB per sequence, 4.9 fit
    (16, 53_248, 1 << 20, 16),  # the whole batch fits
    (6, 100, 250, 2), (7, 100, 250, 1),  # 7 is prime: one sequence at a time
    (3, 1000, 10, 1),  # not even one fits: one at a time
])
def test_default_batch_block_fits_the_budget(batch, sequence_bytes, budget, expected):
    from acljax.srwm.memory import default_batch_block

    assert default_batch_block(batch, sequence_bytes, budget) == expected


@pytest.fixture
def cache_size(monkeypatch, tmp_path):
    """core_cache_bytes() read afresh, from a stand-in /sys cache folder: (level, size) pairs -> bytes."""
    from acljax.srwm import memory

    def read(*indices: tuple[str, str], env: str | None = None) -> int:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        for i, (level, size) in enumerate(indices):
            (folder / f"index{i}").mkdir()
            (folder / f"index{i}" / "level").write_text(level + "\n")
            (folder / f"index{i}" / "size").write_text(size + "\n")
        monkeypatch.setattr(memory, "CPU_CACHE_DIR", folder)
        if env is None:
            monkeypatch.delenv(memory.CACHE_SIZE_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(memory.CACHE_SIZE_VARIABLE, env)
        memory.core_cache_bytes.cache_clear()
        try:
            return memory.core_cache_bytes()
        finally:
            memory.core_cache_bytes.cache_clear()

    return read


def test_l2_size_from_sys_from_the_environment_or_one_mib(cache_size):
    assert cache_size(("1", "48K"), ("2", "512K"), ("3", "32768K")) == 512 * 1024  # the level-2 entry
    assert cache_size(("1", "32K"), ("2", "2M")) == 2 * 1024 * 1024
    assert cache_size() == 1024 * 1024  # nothing readable: 1 MiB


def test_l2_size_override(cache_size):
    assert cache_size(("2", "2048K"), env="256K") == 256 * 1024
    assert cache_size(("2", "2048K"), env="2M") == 2 * 1024 * 1024
    assert cache_size(env="300000") == 300000
    with pytest.raises(ValueError, match="ACLJAX_L2_CACHE_BYTES: expected a cache size such as 524288, 512K or 2M, "
                                         "got 'lots'"):
        cache_size(env="lots")


@pytest.mark.parametrize("batch_block", [3, 0, 2.0])
def test_bad_batch_block(batch_block):
    state = init_state(jax.random.key(0), 2, 4)
    with pytest.raises(ValueError, match=f"batch_block must be None or a positive int that divides the batch size 4, "
                                         f"got {batch_block}"):
        srwm_scan(state, jnp.ones((4, 5, 2, 4)), impl="reversible", batch_block=batch_block)


def test_auto_picks_reversible_on_a_cpu_and_computes_what_scan_does():
    assert resolve_impl("auto", backend="cpu") == "reversible"
    state = init_state(jax.random.key(0), 2, 4)
    x = jax.random.normal(jax.random.key(1), (1, 600, 2, 4))
    np.testing.assert_allclose(srwm_scan(state, x, impl="auto")[0], srwm_scan(state, x, impl="scan")[0], atol=1e-5)


def test_bad_chunk_size():
    state = init_state(jax.random.key(0), 2, 4)
    with pytest.raises(ValueError, match="chunk_size must be a positive int or None, got 0"):
        srwm_scan(state, jnp.ones((1, 5, 2, 4)), impl="reversible", chunk_size=0)


@pytest.mark.parametrize("steps, expected", [(20000, 125), (1000, 25), (100, 10), (97, 10), (1, 1), (2, 1)])
def test_default_remat_chunk_divides_near_sqrt(steps, expected):
    from acljax.srwm.memory import default_remat_chunk

    assert default_remat_chunk(steps) == expected  # 97 is prime: ceil(sqrt(97)) = 10


@pytest.mark.parametrize("steps, expected", [(1, 1), (70, 70), (128, 128), (150, 75), (1000, 100), (20000, 80),
                                             (2 * 47, 94), (3 * 47, 47), (127 * 2 + 127, 127), (131 * 3, 64)])
def test_default_anchor_interval_avoids_padding(steps, expected):
    from acljax.srwm.memory import default_anchor_interval

    assert default_anchor_interval(steps) == expected  # 393 = 3 x 131: no divisor in [32, 128], so 64 and padding


@pytest.mark.parametrize("steps, expected", [(5, 5), (64, 64), (70, 35), (128, 64), (150, 50), (500, 50),
                                             (2000, 50), (131, 64), (2 * 47, 47)])
def test_the_kernels_anchor_interval_is_at_most_64(steps, expected):  # the Pallas kernels' chunks
    from acljax.srwm.memory import default_anchor_interval

    assert default_anchor_interval(steps, longest=64) == expected  # 131 is prime: 64 and padding


@pytest.mark.parametrize("n_beta, d_out", [(4, 4), (1, 6)])
def test_the_hand_derived_step_backward_equals_autodiff_of_the_step(x64, n_beta, d_out):
    from acljax.srwm.step import FusedLayout, add_outer, fuse, fused_step, step_backward

    state = broadcast_state(init_state(jax.random.key(0), 2, 4, d_out=d_out, n_beta=n_beta, q_init_scale=1.0,
                                       dtype=jnp.float64), 3)
    w_prev, x_t = fuse(state), jax.random.normal(jax.random.key(1), (3, 2, 4), jnp.float64)
    w, y, kept = fused_step(w_prev, x_t, d_out)
    dw = jax.random.normal(jax.random.key(2), w.shape, jnp.float64)
    dy = jax.random.normal(jax.random.key(3), y.shape, jnp.float64)
    autodiff = jax.jit(lambda w_, x_, cotangents: jax.vjp(lambda a, b: fused_step(a, b, d_out)[:2], w_, x_)[1](
        cotangents))
    expected_dw, expected_dx = autodiff(w_prev, x_t, (dw, dy))
    layout = FusedLayout(d_out, 4)
    revert, dw_update, got_dx = jax.jit(functools.partial(step_backward, layout))(w, x_t, kept, dw, dy)
    np.testing.assert_allclose(add_outer(layout, w, *revert), w_prev, atol=1e-12)
    np.testing.assert_allclose(add_outer(layout, dw, *dw_update), expected_dw, atol=1e-12)
    np.testing.assert_allclose(got_dx, expected_dx, atol=1e-12)
