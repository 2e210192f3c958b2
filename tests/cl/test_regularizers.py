"""Regularisers and importances against brute-force loops and hand computations on a tiny MLP."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from acljax.cl import (
    consolidate,
    ewc_consolidate,
    fisher_diagonal,
    l2_consolidate,
    mas_consolidate,
    mas_importance,
    online_ewc_consolidate,
    quadratic_penalty,
    si_consolidate,
    synaptic_intelligence,
)
from acljax.cl.importance import BLOCK


def mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def tiny(seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    params = {"w1": jax.random.normal(k[0], (3, 4)), "b1": 0.1 * jax.random.normal(k[1], (4,)),
              "w2": jax.random.normal(k[2], (4, 3)), "b2": 0.1 * jax.random.normal(k[3], (3,))}
    x = jax.random.normal(k[4], (7, 3))
    y = jnp.array([0, 1, 2, 1, 0, 2, 2])
    return params, x, y


def _close(a, b, tol=1e-5):
    chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


def log_prob(params, xi, k):
    return jax.nn.log_softmax(mlp(params, xi[None])[0])[k]


def brute_force_fisher(params, x, y, estimator, key=None):
    """A Python loop over examples (and classes for "exact"): one jax.grad per log-probability."""
    keys = jax.random.split(key if key is not None else jax.random.key(0), len(x))
    total = jax.tree.map(jnp.zeros_like, params)
    for i in range(len(x)):
        logp = jax.nn.log_softmax(mlp(params, x[i:i + 1])[0])
        if estimator == "exact":
            terms = [(float(jnp.exp(logp[k])), k) for k in range(3)]
        elif estimator == "sample":
            terms = [(1.0, int(jax.random.categorical(keys[i], logp)))]
        elif estimator == "argmax":
            terms = [(1.0, int(jnp.argmax(logp)))]
        else:
            terms = [(1.0, int(y[i]))]
        for weight, k in terms:
            g = jax.grad(log_prob)(params, x[i], k)
            total = jax.tree.map(lambda t, gi, w=weight: t + w * gi ** 2, total, g)
    return jax.tree.map(lambda t: t / len(x), total)


@pytest.mark.parametrize("estimator", ["exact", "sample", "argmax", "empirical"])
def test_fisher_estimators_match_brute_force(estimator):
    params, x, y = tiny()
    key = jax.random.key(3)
    got = fisher_diagonal(mlp, params, x, y, estimator=estimator, key=key, chunk_size=3)
    _close(got, brute_force_fisher(params, x, y, estimator, key))


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_importances_over_several_blocks_match_a_materialised_mean(chunk_size):
    """More examples than one compiled block (the last one padded): the mean of every per-example squared
    (Fisher) or absolute (MAS) gradient, formed at once with vmap."""
    params, _, _ = tiny()
    n = BLOCK + BLOCK // 2 + 5
    x = jax.random.normal(jax.random.key(5), (n, 3))
    y = jax.random.randint(jax.random.key(6), (n,), 0, 3)
    grads = jax.vmap(jax.grad(log_prob), in_axes=(None, 0, 0))(params, x, y)
    _close(fisher_diagonal(mlp, params, x, y, estimator="empirical", chunk_size=chunk_size),
           jax.tree.map(lambda g: (g ** 2).mean(0), grads))
    sq_norm = jax.vmap(jax.grad(lambda p, xi: jnp.sum(mlp(p, xi[None]) ** 2)), in_axes=(None, 0))(params, x)
    _close(mas_importance(mlp, params, x, chunk_size=chunk_size), jax.tree.map(lambda g: jnp.abs(g).mean(0), sq_norm))


def test_mas_importance_matches_brute_force():
    params, x, _ = tiny()
    expected = jax.tree.map(jnp.zeros_like, params)
    for i in range(len(x)):
        g = jax.grad(lambda p, xi: jnp.sum(mlp(p, xi[None]) ** 2))(params, x[i])
        expected = jax.tree.map(lambda t, gi: t + jnp.abs(gi) / len(x), expected, g)
    _close(mas_importance(mlp, params, x, chunk_size=2), expected)


def test_ewc_gradient_is_lambda_f_times_distance():
    params, x, y = tiny()
    anchor, _, _ = tiny(seed=1)
    fisher = fisher_diagonal(mlp, anchor, x, y, estimator="empirical")
    tx = quadratic_penalty(40.0)
    state = ewc_consolidate(tx.init(params), anchor, fisher)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, state, params)
    for name in params:
        expected = 1.0 + 40.0 * np.asarray(fisher[name]) * (np.asarray(params[name]) - np.asarray(anchor[name]))
        np.testing.assert_allclose(updates[name], expected, rtol=1e-5, atol=1e-6)


def test_ewc_over_tasks_equals_the_sum_of_per_task_penalties():
    params, _, _ = tiny()
    anchors = [tiny(seed=s)[0] for s in (1, 2, 3)]
    fishers = [jax.tree.map(lambda p, s=s: jnp.abs(p) * (s + 1), a) for s, a in enumerate(anchors)]
    tx = quadratic_penalty(3.0)
    state = tx.init(params)
    for a, f in zip(anchors, fishers):
        state = ewc_consolidate(state, a, f)

    def explicit(p):  # sum_t (lambda / 2) sum F_t (p - anchor_t)^2
        return sum(1.5 * sum(jnp.sum(fi * (pi - ai) ** 2) for fi, pi, ai in
                             zip(jax.tree.leaves(f), jax.tree.leaves(p), jax.tree.leaves(a)))
                   for a, f in zip(anchors, fishers))

    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    _close(updates, jax.grad(explicit)(params), 1e-4)


def test_online_ewc_decays_and_keeps_the_latest_anchor():
    params, _, _ = tiny()
    a1, a2 = tiny(seed=1)[0], tiny(seed=2)[0]
    f1 = jax.tree.map(jnp.abs, a1)
    f2 = jax.tree.map(lambda p: p ** 2, a2)
    tx = quadratic_penalty(1.0)
    s1 = online_ewc_consolidate(online_ewc_consolidate(tx.init(params), a1, f1, 1.0), a2, f2, 1.0)
    _close(s1.importance, jax.tree.map(jnp.add, f1, f2))  # gamma = 1: the sum
    s5 = online_ewc_consolidate(online_ewc_consolidate(tx.init(params), a1, f1, 0.5), a2, f2, 0.5)
    expected_f = jax.tree.map(lambda u, v: 0.5 * u + v, f1, f2)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), s5, params)
    _close(updates, jax.tree.map(lambda f, p, a: f * (p - a), expected_f, params, a2))


def test_l2_and_mas_consolidation():
    params, x, _ = tiny()
    anchor = tiny(seed=1)[0]
    tx = quadratic_penalty(2.0)
    l2 = l2_consolidate(tx.init(params), anchor)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), l2, params)
    _close(updates, jax.tree.map(lambda p, a: 2.0 * (p - a), params, anchor))
    imp = mas_importance(mlp, anchor, x)
    mas = mas_consolidate(mas_consolidate(tx.init(params), anchor, imp), params, imp)
    _close(mas.importance, jax.tree.map(lambda i: 2 * i, imp))  # summed over two tasks


def test_si_omega_matches_a_hand_computation_with_sgd_and_adam():
    """Quadratic task losses 0.5 ||theta - target||^2 on a 3-vector, three steps per task, in numpy."""
    target1, target2 = np.array([1.0, -2.0, 0.5]), np.array([0.0, 1.0, 1.0])
    theta0 = np.array([0.3, 0.1, -0.2])
    c, xi = 0.7, 0.1  # paper's c; strength = 2c

    def run(inner, numpy_step):
        tx = synaptic_intelligence(inner, strength=2 * c)
        params = jnp.asarray(theta0)
        state = tx.init(params)
        theta, omega, inner_np = theta0.copy(), np.zeros(3), None
        big_omega, anchor = np.zeros(3), np.zeros(3)
        for target in (target1, target2):
            start = theta.copy()
            for _ in range(3):
                g = theta - target
                total = g + 2 * c * big_omega * (theta - anchor)
                u, inner_np = numpy_step(total, inner_np)
                omega -= g * u
                theta = theta + u
                updates, state = tx.update(jnp.asarray(params - target), state, params)
                params = optax.apply_updates(params, updates)
            # optax runs in float32, the reference in float64: Adam's sqrt amplifies rounding to ~2e-5
            np.testing.assert_allclose(state.omega, omega, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(params, theta, rtol=1e-4, atol=1e-6)
            big_omega = np.maximum(big_omega + omega / ((theta - start) ** 2 + xi), 0)
            anchor, omega = theta.copy(), np.zeros(3)
            state = si_consolidate(state, params, xi=xi)
            np.testing.assert_allclose(state.penalty.importance, big_omega, rtol=1e-4, atol=1e-6)

    def sgd(g, _):
        return -0.1 * g, None

    run(optax.sgd(0.1), sgd)

    def adam(g, st):
        m, v, t = st if st is not None else (np.zeros(3), np.zeros(3), 0)
        t += 1
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
        return -0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8), (m, v, t)

    run(optax.adam(0.05), adam)


def test_no_recompilation_across_consolidations():
    params, x, y = tiny()
    tx = optax.chain(quadratic_penalty(10.0), optax.adam(1e-2))

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(mlp(p, x), y).mean())(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for _ in range(3):
        for _ in range(2):
            params, opt_state = step(params, opt_state)
        fisher = fisher_diagonal(mlp, params, x, y, estimator="empirical")
        opt_state = (ewc_consolidate(opt_state[0], params, fisher), *opt_state[1:])
    assert step._cache_size() == 1


def test_strength_as_an_injected_hyperparameter_and_a_mask():
    """optax.inject_hyperparams turns strength into an array in the state that can be changed between steps;
    a mask leaves the excluded leaves' gradients untouched. Expected: L2's gradient strength * (p - a) by hand."""
    params, _, _ = tiny()
    anchor = tiny(seed=1)[0]
    tx = optax.inject_hyperparams(quadratic_penalty, static_args=("mask",))(
        strength=2.0, mask={"w1": True, "b1": False, "w2": True, "b2": False})
    state = tx.init(params)
    state = state._replace(inner_state=l2_consolidate(state.inner_state, anchor))
    zeros = jax.tree.map(jnp.zeros_like, params)
    step = jax.jit(tx.update)
    for strength in (2.0, 0.5):
        state.hyperparams["strength"] = jnp.asarray(strength)
        updates, _ = step(zeros, state, params)
        for name in params:
            expected = strength * (params[name] - anchor[name]) if name.startswith("w") else 0 * params[name]
            np.testing.assert_allclose(updates[name], expected, rtol=1e-6, atol=1e-7)
    assert step._cache_size() == 1  # a new strength is data, not a new program
    by_function = quadratic_penalty(1.0, mask=lambda p: jax.tree.map(lambda leaf: leaf.ndim == 2, p))
    updates, _ = by_function.update(zeros, l2_consolidate(by_function.init(params), anchor), params)
    np.testing.assert_array_equal(updates["b1"], 0.0)
    np.testing.assert_allclose(updates["w1"], params["w1"] - anchor["w1"], rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: quadratic_penalty(-1.0), "strength must be a non-negative number"),
    (lambda: quadratic_penalty(jnp.ones(3)), "strength must be a non-negative number \\(or scalar array\\)"),
    (lambda: quadratic_penalty(float("nan")), r"strength must be a non-negative number \(or scalar array\), got nan"),
    (lambda: synaptic_intelligence(optax.sgd(0.1), strength=float("inf")), "strength must be a non-negative number"),
    (lambda: synaptic_intelligence(optax.sgd(0.1), strength=-2), "strength must be a non-negative number"),
    (lambda: online_ewc_consolidate(quadratic_penalty(1).init(tiny()[0]), tiny()[0], tiny()[0], 0.0),
     "gamma must be in"),
    (lambda: consolidate(quadratic_penalty(1).init(tiny()[0]), tiny()[0], tiny()[0], mode="sum"), "mode must be"),
    (lambda: si_consolidate(synaptic_intelligence(optax.sgd(0.1), 1.0).init(tiny()[0]), tiny()[0], xi=0.0),
     "xi must be > 0"),
    (lambda: fisher_diagonal(mlp, tiny()[0], tiny()[1][:0], estimator="exact"), "at least one example"),
    (lambda: fisher_diagonal(mlp, tiny()[0], tiny()[1], estimator="empirical"), "needs labels y"),
    (lambda: fisher_diagonal(mlp, tiny()[0], tiny()[1], estimator="sample"), "needs a PRNG key"),
    (lambda: fisher_diagonal(mlp, tiny()[0], tiny()[1], estimator="true"), "estimator must be one of"),
    (lambda: mas_importance(mlp, tiny()[0], tiny()[1], chunk_size=0), "chunk_size must be a positive int or None"),
    (lambda: quadratic_penalty(1.0).update(tiny()[0], quadratic_penalty(1.0).init(tiny()[0])), "needs params"),
])
def test_bad_hyper_parameters_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
