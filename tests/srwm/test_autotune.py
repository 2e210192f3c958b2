"""acljax.srwm.autotune: the GPU layout measured once per device kind and shape and cached (the measuring itself runs
on a GPU; here it is replaced by given times), and what a call with no gpu_layout gets on each backend."""

import json

import jax
import jax.numpy as jnp
import pytest

from acljax.srwm import autotune, init_state
from acljax.srwm.pallas import GPULayout, pallas_impl


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "gpu_layouts.json"
    monkeypatch.setenv(autotune.CACHE_VARIABLE, str(path))
    return path


def _never():
    raise AssertionError("measured although cached")


def test_the_fastest_median_is_kept_and_reused(cache):
    times = {GPULayout(8, 4): [1.0, 5.0, 5.0], GPULayout(16, 2): [3.0, 3.0, 3.0], GPULayout(1, 1): [4.0, 4.0, 9.0]}
    assert autotune.tuned_gpu_layout("k", lambda: times) == GPULayout(16, 2)  # medians 5, 3, 4 (not the minimum 1)
    assert json.loads(cache.read_text()) == {"k": {"lanes": 16, "num_warps": 2, "kernel": "triton", "chunk": None}}
    assert autotune.tuned_gpu_layout("k", _never) == GPULayout(16, 2)
    assert autotune.tuned_gpu_layout("other", lambda: {GPULayout(2, 1): [1.0]}) == GPULayout(2, 1)
    assert set(json.loads(cache.read_text())) == {"k", "other"}  # earlier entries kept


def test_nothing_measured_gives_the_default_and_caches_nothing(cache):
    assert autotune.tuned_gpu_layout("k", dict) is None  # the default layout
    assert not cache.exists()


def test_an_unreadable_cache_is_measured_again_and_rewritten(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert autotune.tuned_gpu_layout("k", lambda: {GPULayout(4, 8): [2.0]}) == GPULayout(4, 8)
    assert json.loads(cache.read_text()) == {"k": {"lanes": 4, "num_warps": 8, "kernel": "triton", "chunk": None}}


def test_the_mosaic_gpu_kernel_is_a_candidate_and_cached_as_such(cache):
    mosaic = GPULayout(kernel="mosaic_gpu")
    assert mosaic in autotune.CANDIDATES
    assert autotune.tuned_gpu_layout("k", lambda: {GPULayout(8, 4): [2.0], mosaic: [1.0]}) == mosaic
    assert autotune.tuned_gpu_layout("k", _never) == mosaic
    cache.write_text(json.dumps({"old": {"lanes": 16, "num_warps": 2}}))  # written before the kernel was recorded
    assert autotune.tuned_gpu_layout("old", _never) == GPULayout(16, 2)


def test_a_layout_whose_results_disagree_with_reversible_is_left_out(monkeypatch):
    """Timed for real (the kernels in interpret mode on this CPU); one layout's kernel is made wrong by 1%."""
    wrong = GPULayout(1, 1)

    def kernels(state, x, gpu_layout):
        y, final = pallas_impl(state, x, gpu_layout=gpu_layout)
        return (y * 1.02 if gpu_layout == wrong else y), final

    monkeypatch.setattr(autotune, "pallas_impl", kernels)
    state, x = init_state(jax.random.key(0), 2, 4), jax.random.normal(jax.random.key(1), (2, 5, 2, 4))
    with pytest.warns(UserWarning, match="GPULayout\\(lanes=1, num_warps=1, kernel='triton', chunk=None\\) left out: "
                                         "its gradients differ from reversible.s by [1-9].[0-9]e-02"):
        times = autotune.time_layouts([GPULayout(8, 4), wrong], state, x, repeats=2)
    assert list(times) == [GPULayout(8, 4)] and len(times[GPULayout(8, 4)]) == 2


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("1", True), ("Yes", True), (None, True)])
def test_the_switch(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(autotune.SWITCH_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(autotune.SWITCH_VARIABLE, value)
    assert autotune.enabled() is expected


def test_a_bad_switch_value_is_refused(monkeypatch):
    monkeypatch.setenv(autotune.SWITCH_VARIABLE, "sometimes")
    with pytest.raises(ValueError, match="ACLJAX_AUTOTUNE must be 0 or 1 .*, got 'sometimes'"):
        autotune.enabled()


def test_off_a_gpu_nothing_is_measured(cache, monkeypatch):
    monkeypatch.setattr(autotune, "time_layouts", lambda *a, **k: _never())
    state, x = init_state(jax.random.key(0), 2, 4), jnp.zeros((2, 5, 2, 4))
    assert jax.default_backend() == "cpu" and autotune.gpu_layout_for(state, x) is None


def test_on_a_gpu_a_call_being_traced_measures_concrete_inputs_of_its_shapes(cache, monkeypatch):
    seen = []

    def fake_times(layouts, state, x, repeats):
        seen.append((state, x))
        return {GPULayout(32, 8): [1.0], GPULayout(8, 4): [2.0]}

    monkeypatch.setattr(autotune, "time_layouts", fake_times)
    monkeypatch.setattr(autotune.jax, "default_backend", lambda: "gpu")
    state, x = init_state(jax.random.key(0), 2, 4), jnp.zeros((3, 5, 2, 4), jnp.bfloat16)
    picked = []
    jax.jit(lambda s, x: picked.append(autotune.gpu_layout_for(s, x)) or x)(state, x)  # s and x are tracers here
    assert picked == [GPULayout(32, 8)]
    measured_state, measured_x = seen[0]
    assert not isinstance(measured_x, jax.core.Tracer) and measured_x.shape == x.shape and measured_x.dtype == x.dtype
    assert [w.shape for w in measured_state] == [w.shape for w in state]
    assert all(not isinstance(w, jax.core.Tracer) for w in measured_state)
    monkeypatch.setenv(autotune.SWITCH_VARIABLE, "0")  # switched off: the untuned default, nothing measured
    monkeypatch.setattr(autotune, "time_layouts", lambda *a, **k: _never())
    assert autotune.gpu_layout_for(state, jnp.zeros((4, 5, 2, 4))) is None


def test_srwm_scan_asks_for_the_tuned_layout_only_for_the_kernels_with_none_given(monkeypatch):
    from acljax.srwm import api, srwm_scan

    asked = []
    monkeypatch.setattr(api, "gpu_layout_for", lambda state, x: asked.append(x.shape) or GPULayout(1, 1))
    state, x = init_state(jax.random.key(0), 2, 4), jnp.zeros((2, 3, 2, 4))
    srwm_scan(state, x, impl="pallas")
    srwm_scan(state, x, impl="pallas", gpu_layout=GPULayout(2, 1))
    srwm_scan(state, x, impl="scan")
    assert asked == [(2, 3, 2, 4)]


def test_the_sweep_times_every_candidate_then_the_fastest_at_each_chunk_length(monkeypatch):
    asked = []

    def fake_times(layouts, state, x, repeats):
        asked.append(list(layouts))
        return {layout: [1.0 + layout.lanes / 64 + (layout.chunk or 48) / 100] for layout in layouts}

    monkeypatch.setattr(autotune, "time_layouts", fake_times)
    rounds = autotune.sweep(None, None, repeats=1)
    assert asked[0] == list(autotune.CANDIDATES)
    best = GPULayout(lanes=1, num_warps=1)  # the first of the fewest lanes: 1 + 1/64 + 0.48
    assert asked[1] == [best, GPULayout(1, 1, chunk=16), GPULayout(1, 1, chunk=32), GPULayout(1, 1, chunk=64)]
    assert rounds == [fake_times(asked[0], None, None, 1), fake_times(asked[1], None, None, 1)]
    assert autotune.fastest(rounds[-1]) == GPULayout(1, 1, chunk=16)


def test_a_sweep_where_nothing_compiles_is_empty(monkeypatch):
    monkeypatch.setattr(autotune, "time_layouts", lambda *a, **k: {})
    assert autotune.sweep(None, None, repeats=1) == []
