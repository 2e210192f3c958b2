"""Quadratic-penalty methods: L2, EWC, online EWC and MAS, ``strength/2 sum I (theta - anchor)^2``.

The penalty is :func:`acljax.cl.regularizers.quadratic_penalty` ahead of the optimiser in an
``optax.named_chain`` (entries "penalty" and "optimizer"); at each task end the importances I are estimated
per seed (Fisher diagonal or MAS) and consolidated into the state found under "penalty", wherever the chain
sits in the optimiser.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.tree_utils import tree_get

from acljax.checks import is_positive_int
from acljax.cl.importance import FISHER_ESTIMATORS, fisher_diagonal, mas_importance
from acljax.cl.methods.base import Method, TaskEnd, masked
from acljax.cl.regularizers import (
    _check_strength,
    check_gamma,
    ewc_consolidate,
    l2_consolidate,
    mas_consolidate,
    online_ewc_consolidate,
    quadratic_penalty,
    replace_named,
)


@dataclasses.dataclass(frozen=True)
class L2(Method):
    """Unit importances: every parameter pulled towards its value at the last task end."""

    strength: float = 0.0

    def __post_init__(self):
        _check_strength(self.strength, f"{type(self).__name__}.strength")

    def optimizer(self, inner: optax.GradientTransformation) -> optax.GradientTransformation:
        return optax.named_chain(("penalty", quadratic_penalty(self.strength)), ("optimizer", inner))

    def consolidate(self, end: TaskEnd, penalty):
        return jax.vmap(l2_consolidate)(penalty, end.params)

    def end_task(self, end: TaskEnd):
        opt_state = replace_named(end.opt_state, penalty=self.consolidate(end, tree_get(end.opt_state, "penalty")))
        if end.reset_inner is not None:
            opt_state = replace_named(opt_state, optimizer=jax.vmap(end.reset_inner.init)(end.params))
        return opt_state, end.memory


@dataclasses.dataclass(frozen=True)
class ImportancePenalty(L2):
    """Importances estimated per seed on the task's training data at each task end.
    ``importance_samples``: examples of the task used per seed (None: all, as Hsu et al.)."""

    importance_samples: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.importance_samples is not None and not is_positive_int(self.importance_samples):
            raise ValueError(f"{type(self).__name__}.importance_samples must be a positive int or None (every "
                             f"example), got {self.importance_samples!r}")

    def importance(self, apply, params, x, y, key):
        """One seed's importances; ``apply(params, x)`` gives the task's masked logits."""
        raise NotImplementedError

    def combine(self, penalty, params, importance):
        """Every seed's penalty state (leading axis S) folded with the new importances."""
        raise NotImplementedError

    def consolidate(self, end: TaskEnd, penalty):
        def apply(p, xb):  # one function per task, so all seeds share one compilation (no memory to pass)
            return masked(end.apply(p, (), xb), end.mask)

        importances = []
        for s, seed in enumerate(end.seeds):
            params_s = jax.tree.map(lambda a, s=s: a[s], end.params)

            x, y = end.x, end.y
            if self.importance_samples is not None and self.importance_samples < len(y):
                pick = np.random.default_rng([seed, end.index, 10**6]).choice(len(y), self.importance_samples,
                                                                              replace=False)
                x, y = x[pick], y[pick]
            importances.append(self.importance(apply, params_s, x, y, jax.random.key(seed * 1000 + end.index)))
        return self.combine(penalty, end.params, jax.tree.map(lambda *a: jnp.stack(a), *importances))


@dataclasses.dataclass(frozen=True)
class EWC(ImportancePenalty):
    """Fisher-diagonal importances, summed over tasks (one penalty per task, Kirkpatrick et al. 2017)."""

    fisher_estimator: str = "empirical"

    def __post_init__(self):
        super().__post_init__()
        if self.fisher_estimator not in FISHER_ESTIMATORS:
            raise ValueError(f"{type(self).__name__}.fisher_estimator must be one of {FISHER_ESTIMATORS}, got "
                             f"{self.fisher_estimator!r}")

    def importance(self, apply, params, x, y, key):
        return fisher_diagonal(apply, params, x, y, estimator=self.fisher_estimator, key=key)

    def combine(self, penalty, params, importance):
        return jax.vmap(ewc_consolidate)(penalty, params, importance)


@dataclasses.dataclass(frozen=True)
class OnlineEWC(EWC):
    """One running Fisher, decayed by ``gamma`` at each task end (Schwarz et al. 2018)."""

    gamma: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_gamma(self.gamma, "OnlineEWC.gamma")

    def combine(self, penalty, params, importance):
        return jax.vmap(lambda st, p, f: online_ewc_consolidate(st, p, f, self.gamma))(penalty, params, importance)


@dataclasses.dataclass(frozen=True)
class MAS(ImportancePenalty):
    """Memory-aware synapses (Aljundi et al. 2018): importance = ``mean |d ||f(x)||^2 / d theta|``."""

    def importance(self, apply, params, x, y, key):
        return mas_importance(apply, params, x)

    def combine(self, penalty, params, importance):
        return jax.vmap(mas_consolidate)(penalty, params, importance)
