"""Quadratic-penalty continual-learning regularisers as optax gradient transformations.

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


def _check_strength(strength) -> None:
    """A non-negative finite number or scalar array; traced values (under ``optax.inject_hyperparams``,
    ``jit``) cannot be inspected and pass."""
    if isinstance(strength, jax.core.Tracer):
        return
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.ndarray, jax.Array)) \
            or np.ndim(strength) != 0 or not math.isfinite(float(strength)) or float(strength) < 0:
        raise ValueError(f"strength must be a non-negative number (or scalar array), got {strength!r}")


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


def check_gamma(gamma: float) -> None:
    """Online EWC's decay of the running Fisher: in (0, 1]."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")


def l2_consolidate(state: PenaltyState, params: Params) -> PenaltyState:
    """L2 to the latest task's parameters, unit importance."""
    return consolidate(state, params, jax.tree.map(jnp.ones_like, params), mode="online", decay=0.0)


def mas_consolidate(state: PenaltyState, params: Params, importance: Params) -> PenaltyState:
    """MAS (Aljundi et al. 2018): importances summed over tasks, anchored at the latest params."""
    return consolidate(state, params, importance, mode="online", decay=1.0)
