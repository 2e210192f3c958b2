"""Synaptic Intelligence (Zenke et al. 2017): importances from each parameter's path integral over a task."""

from __future__ import annotations

import dataclasses

import jax
import optax

from acljax.checks import is_finite_number
from acljax.cl.methods.base import Method, TaskEnd
from acljax.cl.regularizers import _check_strength, si_consolidate, synaptic_intelligence


@dataclasses.dataclass(frozen=True)
class SI(Method):
    """The optimiser wrapped by :func:`acljax.cl.synaptic_intelligence`; ``xi`` damps the importance of
    parameters that barely moved. With ``SequentialConfig.reset_optimizer`` the inner optimiser's state is
    re-initialised at task ends."""

    strength: float = 0.0
    xi: float = 0.1

    def __post_init__(self):
        _check_strength(self.strength, "SI.strength")
        if not is_finite_number(self.xi) or not self.xi > 0:
            raise ValueError(f"SI.xi must be a finite number > 0, got {self.xi!r}")

    def optimizer(self, inner: optax.GradientTransformation) -> optax.GradientTransformation:
        return synaptic_intelligence(inner, self.strength)

    def end_task(self, end: TaskEnd):
        consolidated = jax.vmap(lambda st, p: si_consolidate(st, p, xi=self.xi, reset_inner=end.reset_inner))(
            end.opt_state, end.params)
        return consolidated, end.memory
