"""Quadratic-penalty continual-learning regularisers as optax gradient transformations (L2, EWC, online EWC,
MAS, and the Synaptic Intelligence wrapper at the end).

Every penalty here is ``(strength / 2) * sum_t sum_i importance_t,i (theta_i - anchor_t,i)^2``, so its
gradient is ``strength * (A * theta - C)`` with ``A = sum_t importance_t`` and
``C = sum_t importance_t * anchor_t``. The state keeps only A and C: shapes never change across tasks
(nothing recompiles), and EWC's one-penalty-per-task is represented exactly.

Place :func:`quadratic_penalty` before the optimiser's scaling (``optax.chain(quadratic_penalty(l),
optax.adam(lr))``); at a task boundary call a pure consolidation function on its state.
Conventions: Kirkpatrick's EWC (lambda/2) -> ``strength = lambda``; a loss written without the 1/2
(Hsu et al. 2018's code, SI's ``c * sum Omega (theta - anchor)^2``) -> ``strength = 2 * lambda``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = optax.Params


class PenaltyState(NamedTuple):
    importance: Params  # A: summed (or decayed) importance per parameter
    weighted_anchor: Params  # C: sum of importance * anchor


def _check_strength(strength, name: str = "strength") -> None:
    """A non-negative finite number or scalar array; traced values (under ``optax.inject_hyperparams``,
    ``jit``) cannot be inspected and pass. ``name``: what the error calls it."""
    if isinstance(strength, jax.core.Tracer):
        return
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.ndarray, jax.Array)) \
            or np.ndim(strength) != 0 or not math.isfinite(float(strength)) or float(strength) < 0:
        raise ValueError(f"{name} must be a non-negative number (or scalar array), got {strength!r}")


def quadratic_penalty(strength: float | jax.Array, mask: Params | Callable[[Params], Params] | None = None
                      ) -> optax.GradientTransformation:
    """Adds ``strength * (A * params - C)`` to the gradient; no penalty until the first consolidation.

    ``strength`` may be an array, so ``optax.inject_hyperparams(quadratic_penalty)(strength=...)`` can change
    it during training. ``mask``: a pytree of bools like the params (or a function of the params returning
    one, as in ``optax.masked``); leaves marked False get no penalty (for example heads or norms)."""
    _check_strength(strength)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return PenaltyState(zeros, zeros)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("quadratic_penalty needs params: call tx.update(grads, state, params)")
        penalty = jax.tree.map(lambda a, c, p: strength * (a * p - c), state.importance, state.weighted_anchor, params)
        if mask is not None:
            keep = mask(params) if callable(mask) else mask
            penalty = jax.tree.map(lambda term, on: term if on else jnp.zeros_like(term), penalty, keep)
        return jax.tree.map(jnp.add, updates, penalty), state

    return optax.GradientTransformation(init, update)


def consolidate(state: PenaltyState, params: Params, importance: Params, *, mode: str = "accumulate",
                decay: float = 1.0) -> PenaltyState:
    """Add the task just learned (anchor = ``params``) with its ``importance``. Pure; shapes unchanged.

    mode="accumulate": one penalty per task (EWC): A += I, C += I * params.
    mode="online": one anchor, the latest params (online EWC, SI, MAS, L2): A = decay * A + I, C = A * params.
    """
    if mode not in ("accumulate", "online"):
        raise ValueError(f"mode must be 'accumulate' or 'online', got {mode!r}")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay (gamma) must be in [0, 1], got {decay!r}")
    if mode == "accumulate":
        return PenaltyState(jax.tree.map(jnp.add, state.importance, importance),
                            jax.tree.map(lambda c, i, p: c + i * p, state.weighted_anchor, importance, params))
    a = jax.tree.map(lambda old, new: decay * old + new, state.importance, importance)
    return PenaltyState(a, jax.tree.map(jnp.multiply, a, params))


def ewc_consolidate(state: PenaltyState, params: Params, fisher: Params) -> PenaltyState:
    """EWC (Kirkpatrick et al. 2017): a penalty for every task learned so far."""
    return consolidate(state, params, fisher, mode="accumulate")


def online_ewc_consolidate(state: PenaltyState, params: Params, fisher: Params, gamma: float) -> PenaltyState:
    """Online EWC (Schwarz et al. 2018): F* <- gamma F* + F_new, anchored at the latest params."""
    check_gamma(gamma)
    return consolidate(state, params, fisher, mode="online", decay=gamma)


def check_gamma(gamma: float, name: str = "gamma") -> None:
    """Online EWC's decay of the running Fisher: in (0, 1]. ``name``: what the error calls it."""
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0.0 < gamma <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {gamma!r}")


def replace_named(state: optax.OptState, **subtrees) -> optax.OptState:
    """``state`` with the subtree under each name (a key of ``optax.named_chain`` or a NamedTuple field, found
    anywhere as :func:`optax.tree_utils.tree_get` finds it) replaced; the rest of the structure is kept as it is
    (``optax.tree_utils.tree_set`` turns ``named_chain``'s OrderedDict into a dict, which would recompile)."""
    for name, new in subtrees.items():
        old = optax.tree_utils.tree_get(state, name)
        if old is None:
            raise KeyError(f"no {name!r} in the optimiser state")
        leaves, treedef = jax.tree.flatten(state, is_leaf=lambda node, old=old: node is old)
        state = treedef.unflatten([new if leaf is old else leaf for leaf in leaves])
    return state


def l2_consolidate(state: PenaltyState, params: Params) -> PenaltyState:
    """L2 to the latest task's parameters, unit importance."""
    return consolidate(state, params, jax.tree.map(jnp.ones_like, params), mode="online", decay=0.0)


def mas_consolidate(state: PenaltyState, params: Params, importance: Params) -> PenaltyState:
    """MAS (Aljundi et al. 2018): importances summed over tasks, anchored at the latest params."""
    return consolidate(state, params, importance, mode="online", decay=1.0)


class SIState(NamedTuple):
    inner_state: optax.OptState  # the wrapped optimiser's state (optax's name for it)
    penalty: PenaltyState  # importance = Omega, anchored at the last task's params
    omega: optax.Params  # path integral of the current task
    task_start: optax.Params  # params when the current task began


def synaptic_intelligence(inner: optax.GradientTransformation, strength: float) -> optax.GradientTransformation:
    """Synaptic Intelligence (Zenke, Poole & Ganguli 2017) around ``inner``: penalty ``(strength / 2) * sum Omega
    (theta - anchor)^2`` (the paper's c is ``strength / 2``). SI needs what the optimiser actually applied, so it
    wraps the inner transformation (like ``optax.MultiSteps``): ``update`` receives the unregularised task gradient
    g, adds the penalty, runs ``inner`` and accumulates ``omega -= g * delta_theta`` (delta_theta the update
    returned); :func:`si_consolidate` turns omega into importances at a task boundary."""
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
    """End of a task: ``Omega <- relu(Omega + omega / (Delta^2 + xi))`` (Delta the change over the task), anchor at
    ``params``, zero omega. Pass the inner optimiser as
    ``reset_inner`` to re-initialise its state too (the official Split-MNIST recipe resets Adam)."""
    if not xi > 0:
        raise ValueError(f"xi must be > 0 (it keeps omega / (Delta^2 + xi) finite), got {xi!r}")
    importance = jax.tree.map(lambda o, w, p, s: jax.nn.relu(o + w / ((p - s) ** 2 + xi)),
                              state.penalty.importance, state.omega, params, state.task_start)
    penalty = PenaltyState(importance, jax.tree.map(jnp.multiply, importance, params))
    inner_state = state.inner_state if reset_inner is None else reset_inner.init(params)
    return SIState(inner_state, penalty, jax.tree.map(jnp.zeros_like, params), params)
