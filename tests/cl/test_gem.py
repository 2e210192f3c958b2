"""GEM: the QP solver against an exhaustive search over active sets, the projection against its closed
form and its constraints, and GEM against naive training where naive forgets."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods import GEM
from acljax.cl.methods.gem import RIDGE, gem_project
from acljax.cl.qp import nonnegative_qp
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


def exhaustive_qp(q, c):
    """The u >= 0 minimising 0.5 u'Qu + c'u: the active set whose KKT point is primal and dual feasible."""
    n = len(c)
    for size in range(n + 1):
        for free in itertools.combinations(range(n), size):
            u = np.zeros(n)
            if free:
                u[list(free)] = np.linalg.solve(q[np.ix_(free, free)], -c[list(free)])
            if (u >= -1e-12).all() and (q @ u + c >= -1e-9).all():
                return u
    raise AssertionError("no KKT point")


def random_problem(rng, n, p=40):
    rows = rng.normal(size=(n, p)) * rng.uniform(0.01, 10)
    rows[1:] += rng.uniform(0, 3) * rows[:1]  # correlated tasks, as gradients of similar tasks are
    g = rng.normal(size=p)
    return rows, g


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_qp_solver_equals_exhaustive_search(dtype):
    rng = np.random.default_rng(0)
    with jax.enable_x64(dtype == jnp.float64):
        for _ in range(60):
            rows, g = random_problem(rng, int(rng.integers(1, 7)))
            q, c = rows @ rows.T + RIDGE * np.eye(len(rows)), rows @ g
            expected = exhaustive_qp(q, c)
            u = np.asarray(nonnegative_qp(jnp.asarray(q, dtype), jnp.asarray(c, dtype)))
            tol = 1e-4 if dtype == jnp.float32 else 1e-9
            np.testing.assert_allclose(u, expected, atol=tol * max(1.0, np.abs(expected).max()))


def test_projection_with_one_constraint_is_the_closed_form():
    g = {"w": jnp.array([1.0, -2.0, 0.5])}
    g1 = jnp.array([-1.0, 1.0, 0.0])  # g . g1 = -3 < 0
    z = gem_project(g, {"w": g1[None]}, jnp.array([True]))
    v = 3.0 / (g1 @ g1 + RIDGE)  # the dual's minimiser, v = -g.g1 / (|g1|^2 + ridge)
    np.testing.assert_allclose(z["w"], g["w"] + v * g1, rtol=1e-5)


def test_projection_satisfies_every_active_constraint_and_ignores_the_rest():
    rng = np.random.default_rng(1)
    project = jax.jit(gem_project)
    for _ in range(20):
        rows, g = random_problem(rng, 5)
        active = np.array([True, True, True, True, False])
        rows[4] = -g  # the inactive row conflicts hardest with g, and must not matter
        for margin in (0.0, 0.5):
            z = np.asarray(project(jnp.asarray(g, jnp.float32), jnp.asarray(rows, jnp.float32),
                                       jnp.asarray(active), margin))
            dots = rows[active] @ z
            if (rows[active] @ g >= 0).all():
                np.testing.assert_array_equal(z, g.astype(np.float32))  # nothing violated: g untouched
            else:
                assert dots.min() >= -1e-3 * np.abs(rows).max() * np.abs(z).max(), dots
                # the closest feasible vector: z - g lies in the cone of the active rows (KKT of the primal)
                v = np.linalg.lstsq(rows[active].T, z - g, rcond=None)[0]
                assert v.min() >= -1e-3 * max(1.0, np.abs(v).max())


def learner(method, s):
    config = SequentialConfig(method=method, hidden=(16,), epochs=10, batch_size=16, learning_rate=1e-2)
    return SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)


def test_gem_keeps_what_naive_forgets_in_class_incremental_without_recompiling():
    s = stream("class")
    naive = evaluate(learner("naive", s), s.tasks, [0], progress=False).matrices[0]
    gem_learner = learner(GEM(memory_size=60, max_tasks=3, margin=0.5), s)
    gem = evaluate(gem_learner, s.tasks, [0], progress=False).matrices[0]
    assert naive[-1, 0] < 0.1 and gem[-1, 0] > 0.5
    assert gem_learner._step._cache_size() == 1


def test_gem_refuses_more_tasks_than_it_keeps_memories_for():
    s = stream("class")  # 3 tasks
    with pytest.raises(ValueError, match=r"max_tasks=2 tasks and task 2 is number 3: raise GEM.max_tasks"):
        evaluate(learner(GEM(memory_size=40, max_tasks=2), s), s.tasks, [0], progress=False)


@pytest.mark.parametrize("kw, message", [
    ({"memory_size": 3, "max_tasks": 5}, r"GEM.memory_size \(3\) must be >= GEM.max_tasks \(5\)"),
    ({"max_tasks": 0}, "GEM.max_tasks must be a positive int, got 0"),
    ({"margin": -0.1}, "GEM.margin must be a finite number >= 0, got -0.1"),
])
def test_bad_gem_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        GEM(**kw)
