"""The functional SRWM core against independent references."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from acljax.srwm import SRWMState, broadcast_state, init_state, srwm_read, srwm_scan, srwm_step


def _inputs(seed, batch, steps, heads, d, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), (batch, steps, heads, d), dtype)


def _close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=tol, rtol=tol)


def numpy_matrix_form(state: SRWMState, x: np.ndarray, input_softmax=False):
    """Float64 numpy, one head and one sequence at a time, in the transition form
    W_t = (I + b_t k_t (q_t - k_t)^T) W_{t-1} (k as a column vector), per block."""
    ws = {n: np.array(np.broadcast_to(w, (x.shape[0], *w.shape[-3:])), np.float64) for n, w in state._asdict().items()}
    x = np.asarray(x, np.float64)
    batch, steps, heads, d = x.shape
    y = np.zeros((batch, steps, heads, ws["w_y"].shape[-1]))

    def softmax(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    for bi in range(batch):
        for h in range(heads):
            w = {n: ws[n][bi, h].copy() for n in ws}
            for t in range(steps):
                xt = softmax(x[bi, t, h]) if input_softmax else x[bi, t, h]
                y[bi, t, h] = xt @ w["w_y"]
                q, k = softmax(xt @ w["w_q"]), softmax(xt @ w["w_k"])
                b = 1 / (1 + np.exp(-(xt @ w["w_b"])))
                rates = b if b.size == 4 else np.repeat(b, 4)
                for i, n in enumerate(("w_y", "w_q", "w_k", "w_b")):
                    w[n] = (np.eye(d) + rates[i] * np.outer(k, q - k)) @ w[n]
            for n in ws:
                ws[n][bi, h] = w[n]
    return y, SRWMState(**ws)


CASES = [  # batch, steps, heads, d, d_out, n_beta, input_softmax, shared_state
    (2, 5, 3, 4, 4, 4, False, True),
    (1, 1, 1, 3, 3, 4, False, True),  # T = 1
    (3, 7, 2, 5, 6, 1, True, False),  # d_out != d, one learning rate, input softmax, batched state
    (2, 4, 4, 8, 8, 1, False, True),
]


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_matrix_form(case):
    batch, steps, heads, d, d_out, n_beta, input_softmax, shared = case
    state = init_state(jax.random.key(1), heads, d, d_out=d_out, n_beta=n_beta, q_init_scale=1.0)
    if not shared:
        state = SRWMState(*(w + 0.1 * jax.random.normal(jax.random.key(7), (batch, *w.shape)) for w in state))
    x = _inputs(2, batch, steps, heads, d)
    y, final = srwm_scan(state, x, impl="reference", input_softmax=input_softmax)
    y_np, final_np = numpy_matrix_form(state, np.asarray(x), input_softmax)
    _close(y, y_np, 1e-5)
    for a, b in zip(final, final_np):
        _close(a, b, 1e-5)


@pytest.mark.parametrize("case", CASES)
def test_scan_matches_reference(case):
    batch, steps, heads, d, d_out, n_beta, input_softmax, shared = case
    state = init_state(jax.random.key(3), heads, d, d_out=d_out, n_beta=n_beta, q_init_scale=1.0)
    if not shared:
        state = broadcast_state(state, batch)
    x = _inputs(4, batch, steps, heads, d)
    y_ref, final_ref = srwm_scan(state, x, impl="reference", input_softmax=input_softmax)
    y, final = srwm_scan(state, x, impl="scan", input_softmax=input_softmax)
    assert y.shape == (batch, steps, heads, d_out) and final.w_y.shape == (batch, heads, d, d_out)
    _close(y, y_ref, 1e-5)
    for a, b in zip(final, final_ref):
        _close(a, b, 1e-5)


def test_state_changes_at_every_step_including_the_last():
    state = init_state(jax.random.key(0), 2, 4)
    x = _inputs(1, 1, 3, 2, 4)
    _, after_two = srwm_scan(state, x[:, :2])
    _, after_three = srwm_scan(state, x)
    assert float(jnp.abs(after_three.w_y - after_two.w_y).max()) > 1e-4


@pytest.mark.parametrize("impl", ["reference", "scan"])
def test_gradients_match_finite_differences(x64, impl):
    state = init_state(jax.random.key(0), 2, 3, n_beta=4, q_init_scale=1.0, dtype=jnp.float64)
    x = _inputs(1, 2, 4, 2, 3, jnp.float64)

    def loss(state, x):
        y, final = srwm_scan(state, x, impl=impl)
        return jnp.sum(jnp.sin(y)) + sum(jnp.sum(w ** 2) for w in final)

    check_grads(loss, (state, x), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_one_call_equals_two_carried_calls():
    state = init_state(jax.random.key(0), 3, 4)
    x = _inputs(1, 2, 9, 3, 4)
    y_all, final_all = srwm_scan(state, x)
    y1, mid = srwm_scan(state, x[:, :4])
    y2, final = srwm_scan(mid, x[:, 4:])
    _close(jnp.concatenate([y1, y2], axis=1), y_all, 1e-6)
    for a, b in zip(final, final_all):
        _close(a, b, 1e-6)


def test_heads_and_batch_elements_are_independent():
    state = init_state(jax.random.key(0), 3, 4)
    x = _inputs(1, 2, 6, 3, 4)
    y, _ = srwm_scan(state, x)
    y_perturbed, _ = srwm_scan(state, x.at[0, :, 1].add(1.0))  # sequence 0, head 1 only
    changed = np.abs(np.asarray(y_perturbed - y)).max(axis=(1, 3)) > 1e-6  # (B, H)
    np.testing.assert_array_equal(changed, [[False, True, False], [False, False, False]])


def test_vanishing_learning_rates_keep_the_initial_state():
    state = init_state(jax.random.key(0), 2, 4, beta_init=-40.0, init_scale=0.1)
    x = jnp.abs(_inputs(1, 2, 20, 2, 4)) + 0.5  # positive inputs: x @ w_b < -40, sigmoid < 5e-18
    y, final = srwm_scan(state, x)
    for a, b in zip(final, broadcast_state(state, 2)):
        _close(a, b, 1e-7)
    _close(y, jnp.einsum("bthi,hio->btho", x, state.w_y), 1e-5)  # a plain linear map


def test_step_matches_scan_and_jit_matches_eager():
    state = init_state(jax.random.key(0), 2, 4)
    x = _inputs(1, 3, 5, 2, 4)
    y_scan, final_scan = srwm_scan(state, x, impl="scan")
    carry, ys = broadcast_state(state, 3), []
    for t in range(5):
        carry, y_t = srwm_step(carry, x[:, t])
        ys.append(y_t)
    _close(jnp.stack(ys, 1), y_scan, 1e-6)
    y_jit, final_jit = jax.jit(srwm_scan, static_argnames="impl")(state, x, impl="scan")
    _close(y_jit, y_scan, 1e-6)
    for a, b in zip(final_jit, final_scan):
        _close(a, b, 1e-6)


def test_bfloat16_inputs_keep_a_float32_state():
    state = init_state(jax.random.key(0), 2, 8)
    x = _inputs(1, 2, 6, 2, 8)
    y16, final16 = srwm_scan(state, x.astype(jnp.bfloat16))
    y32, _ = srwm_scan(state, x.astype(jnp.bfloat16).astype(jnp.float32))
    assert y16.dtype == jnp.bfloat16 and all(w.dtype == jnp.float32 for w in final16)
    _close(y16, y32, 2e-2)


def test_init_state_statistics():
    state = init_state(jax.random.key(0), 64, 16, beta_init=0.5)
    assert state.w_y.shape == (64, 16, 16) and state.w_b.shape == (64, 16, 4)
    assert abs(float(state.w_y.std()) - 0.25) < 0.01  # 1 / sqrt(16)
    assert abs(float(state.w_k.std()) - 0.25) < 0.01
    assert abs(float(state.w_q.std()) - 0.0025) < 0.0002  # 0.01 / sqrt(16)
    assert abs(float(state.w_b.mean()) - 0.5) < 0.02


BAD_INPUTS = [
    (lambda s: (s, jnp.ones((2, 5, 3))), "x must have rank 4"),
    (lambda s: (s, jnp.ones((2, 5, 3, 4), jnp.int32)), "x must be floating point"),
    (lambda s: (s, jnp.ones((2, 5, 2, 4))), "state has 3 heads but the input has 2"),
    (lambda s: (s, jnp.ones((2, 5, 3, 5))), "state has head_dim 4 but the input has head_dim 5"),
    (lambda s: (broadcast_state(s, 3), jnp.ones((2, 5, 3, 4))), "do not match x's batch size 2"),
    (lambda s: (s._replace(w_k=s.w_k[..., :3]), jnp.ones((2, 5, 3, 4))), "state.w_k must have shape"),
    (lambda s: (s._replace(w_b=jnp.ones((3, 4, 2))), jnp.ones((2, 5, 3, 4))), "1 or 4 columns"),
    (lambda s: (tuple(s), jnp.ones((2, 5, 3, 4))), "state must be an SRWMState"),
    (lambda s: (s, jnp.ones((2, 0, 3, 4))), "at least one time step"),
    (lambda s: (s, jnp.ones((0, 5, 3, 4))), "at least one sequence"),
]


@pytest.mark.parametrize("impl", ["scan", "scan_remat", "reversible"])
@pytest.mark.parametrize("make, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(make, message, impl):
    state, x = make(init_state(jax.random.key(0), 3, 4))
    with pytest.raises(ValueError, match=message):
        srwm_scan(state, x, impl=impl)


def test_bad_impl_and_non_finite_input_are_rejected():
    state = init_state(jax.random.key(0), 3, 4)
    x = jnp.ones((2, 5, 3, 4))
    with pytest.raises(ValueError, match=r"impl must be 'auto' or one of \['pallas', 'reference', 'reversible',"):
        srwm_scan(state, x, impl="cuda")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        srwm_scan(state, x.at[1, 2, 0, 0].set(jnp.nan), check_finite=True)
    with pytest.raises(ValueError, match="needs a concrete x"):
        jax.jit(lambda x: srwm_scan(state, x, check_finite=True))(x)
    srwm_scan(state, x, check_finite=True)  # finite input passes


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=0, head_dim=4), "num_heads must be a positive int"),
    (dict(num_heads=2, head_dim=4, n_beta=2), "n_beta must be 1"),
    (dict(num_heads=2, head_dim=4, dtype=jnp.int32), "dtype must be a floating dtype"),
])
def test_init_state_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        init_state(jax.random.key(0), **kwargs)


@pytest.mark.parametrize("input_softmax", [False, True])
def test_read_equals_the_first_step_of_a_sequence_from_that_state(input_softmax):
    """srwm_read of Q queries = the numpy loop run on each query alone as a one-step sequence, and the
    state it reads is left unchanged (queries do not learn)."""
    w0 = init_state(jax.random.key(1), 3, 4)
    _, carried = srwm_scan(w0, _inputs(2, 2, 5, 3, 4))  # a state that has already learned something
    queries = _inputs(3, 2, 6, 3, 4)
    y = srwm_read(carried, queries, input_softmax=input_softmax)
    expected = np.concatenate([numpy_matrix_form(carried, np.asarray(queries[:, q:q + 1]), input_softmax)[0]
                               for q in range(6)], axis=1)
    _close(y, expected, 1e-5)
    y_shared = srwm_read(w0, queries)  # a shared W_0 serves the whole batch
    _close(y_shared, np.concatenate([numpy_matrix_form(w0, np.asarray(queries[:, q:q + 1]))[0] for q in range(6)], 1),
           1e-5)


def test_read_rejects_a_state_of_another_batch():
    w0 = init_state(jax.random.key(1), 3, 4)
    _, carried = srwm_scan(w0, _inputs(2, 2, 5, 3, 4))
    with pytest.raises(ValueError, match="batch"):
        srwm_read(carried, _inputs(3, 3, 1, 3, 4))


def test_eager_calls_compile_once_per_shape(caplog):
    import logging

    state, x = init_state(jax.random.key(0), 2, 4), jax.random.normal(jax.random.key(1), (3, 7, 2, 4))
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        first = srwm_scan(state, x, impl="scan")
        again = srwm_scan(state, x + 1.0, impl="scan")  # new values, same shapes: no new program
    compiled = [r for r in caplog.records if "Finished XLA compilation of jit(_run_implementation)" in r.getMessage()]
    assert len(compiled) == 1, [r.getMessage() for r in compiled]
    np.testing.assert_allclose(first[0], srwm_scan(state, x, impl="reference")[0], atol=1e-5)
    np.testing.assert_allclose(again[0], srwm_scan(state, x + 1.0, impl="reference")[0], atol=1e-5)  # new values


@pytest.mark.parametrize("impl", ["reference", "scan", "scan_remat", "reversible"])
@pytest.mark.parametrize("precision", ["highest", "high", "default"])
def test_precision_reaches_every_product_forward_and_backward(impl, precision):
    """Every dot_general of the compiled forward+backward (the reversible custom backward included) carries
    the requested precision (a CPU computes float32 products in full regardless, so the program is checked)."""
    import re

    w0 = init_state(jax.random.key(0), 2, 4)
    x = jnp.ones((1, 5, 2, 4))
    grad = jax.grad(lambda w, x: srwm_scan(w, x, impl=impl, precision=precision)[0].sum(), argnums=(0, 1))
    text = jax.jit(grad).lower(w0, x).as_text()
    dots = re.findall(r"stablehlo.dot_general[^\n]*", text)
    assert len(dots) >= 4
    assert all(f"precision = [{precision.upper()}, {precision.upper()}]" in dot for dot in dots), dots
    with pytest.raises(ValueError, match="precision must be one of \\('highest', 'high', 'default'\\)"):
        srwm_scan(w0, x, precision="fp8")


@pytest.mark.parametrize("call, layout", [(srwm_scan, "(B, T, H, d)"), (srwm_read, "(B, Q, H, d)")])
def test_a_python_list_is_refused_by_its_type_without_printing_its_values(call, layout):
    """A nested list where an array goes: one TypeError naming the argument, the type that arrived and what
    is accepted; the values are not dumped into the message."""
    state = init_state(jax.random.key(0), 3, 4)
    x = np.full((2, 5, 3, 4), 0.123).tolist()
    expected = f"^x must be a JAX or NumPy array of shape {re.escape(layout)}, got list"
    with pytest.raises(TypeError, match=expected) as e:
        call(state, x)
    assert "0.123" not in str(e.value)
    with pytest.raises(TypeError, match=r"^state.w_k must be a JAX or NumPy array of shape .*, got list"):
        call(state._replace(w_k=np.asarray(state.w_k).tolist()), jnp.ones((2, 5, 3, 4)))
