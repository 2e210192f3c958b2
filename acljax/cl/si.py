"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017) as a wrapper around any optax optimiser.

SI needs what the optimiser actually applied, so it wraps the inner transformation (like
``optax.MultiSteps``): ``update`` receives the *unregularised* task gradient g, adds the SI penalty,
runs the inner optimiser, and accumulates ``omega -= g * delta_theta`` with delta_theta the update
returned. :func:`si_consolidate` turns omega into importances at a task boundary:
``Omega <- relu(Omega + omega / (Delta^2 + xi))``, Delta the total change over the task.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from acljax.cl.regularizers import PenaltyState, _check_strength, quadratic_penalty


class SIState(NamedTuple):
    inner_state: optax.OptState  # the wrapped optimiser's state (optax's name for it)
    penalty: PenaltyState  # importance = Omega, anchored at the last task's params
    omega: optax.Params  # path integral of the current task
    task_start: optax.Params  # params when the current task began


def synaptic_intelligence(inner: optax.GradientTransformation, strength: float) -> optax.GradientTransformation:
    """Penalty ``(strength / 2) * sum Omega (theta - anchor)^2`` (the paper's c is ``strength / 2``)."""
    _check_strength(strength)
    penalty = quadratic_penalty(strength)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return SIState(inner.init(params), penalty.init(params), zeros, params)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("synaptic_intelligence needs params: call tx.update(grads, state, params)")
        regularised, _ = penalty.update(grads, state.penalty, params)
        updates, inner_state = inner.update(regularised, state.inner_state, params)
        omega = jax.tree.map(lambda w, g, u: w - g * u, state.omega, grads, updates)
        return updates, SIState(inner_state, state.penalty, omega, state.task_start)

    return optax.GradientTransformation(init, update)


def si_consolidate(state: SIState, params: optax.Params, *, xi: float,
                   reset_inner: optax.GradientTransformation | None = None) -> SIState:
    """End of a task: fold omega into Omega, anchor at ``params``, zero omega. Pass the inner optimiser as
    ``reset_inner`` to re-initialise its state too (the official Split-MNIST recipe resets Adam)."""
    if not xi > 0:
        raise ValueError(f"xi must be > 0 (it keeps omega / (Delta^2 + xi) finite), got {xi!r}")
    importance = jax.tree.map(lambda o, w, p, s: jax.nn.relu(o + w / ((p - s) ** 2 + xi)),
                              state.penalty.importance, state.omega, params, state.task_start)
    penalty = PenaltyState(importance, jax.tree.map(jnp.multiply, importance, params))
    inner_state = state.inner_state if reset_inner is None else reset_inner.init(params)
    return SIState(inner_state, penalty, jax.tree.map(jnp.zeros_like, params), params)
