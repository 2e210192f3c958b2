"""Each quadratic-penalty method (L2, EWC, online EWC, MAS, SI) does what defines it: after task 0 it holds
importances and an anchor, and training task 1 under its penalty keeps the parameters task 0 made important
where naive training moves them."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from cl_streams import stream

from acljax.cl.methods import EWC, L2, MAS, SI, OnlineEWC
from acljax.cl.regularizers import PenaltyState
from acljax.cl.trainer import SequentialConfig, SequentialLearner


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)])


def _penalty(opt_state) -> PenaltyState:
    """The method's penalty state, wherever in the optax chain it sits."""
    return next(s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, PenaltyState))
                if isinstance(s, PenaltyState))


def _two_tasks(method, **training):
    """Seed 0 trained on task 0, then task 1 (domain-IL) -> (params after task 0, the optimiser state then,
    params after task 1)."""
    s = stream("domain")
    config = SequentialConfig(method=method, hidden=(16,), epochs=3, batch_size=16, learning_rate=1e-2, **training)
    learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
    learner.reset([0])
    learner.learn(0, s.tasks[0])
    after_0, state_0 = _flat(learner.params), learner.opt_state
    learner.learn(1, s.tasks[1])
    return after_0, state_0, _flat(learner.params)


@pytest.fixture(scope="module")
def naive():
    after_0, _, after_1 = _two_tasks("naive")
    return after_0, after_1


# EWC's Fisher is tiny once a task is learned (its gradients vanish), so its strength is larger
@pytest.mark.parametrize("method", [L2(strength=1e4), EWC(strength=1e8, importance_samples=30),
                                    OnlineEWC(strength=1e8, gamma=0.9, importance_samples=30),
                                    MAS(strength=1e4, importance_samples=30), SI(strength=1e4, xi=0.1)])
def test_a_strong_penalty_keeps_what_task_0_made_important(naive, method):
    """The method minimises task 1's loss plus strength/2 sum I (theta - anchor)^2; naive training minimises the
    loss alone, so its end point is one the method could have chosen: the method ends with the smaller penalty.
    With a penalty that dominates, it ends with a far smaller one (here below a tenth)."""
    after_0, state_0, after_1 = _two_tasks(method)
    penalty = _penalty(state_0)
    importance = _flat(penalty.importance)
    assert (importance > 0).any() and (importance >= 0).all()
    # the anchor, the parameters at the end of task 0: weighted_anchor = importance x anchor
    np.testing.assert_allclose(_flat(penalty.weighted_anchor), importance * after_0, rtol=1e-6, atol=0)
    held = np.sum(importance * (after_1 - after_0) ** 2)
    moved = np.sum(importance * (naive[1] - naive[0]) ** 2)
    assert held < 0.1 * moved


@dataclasses.dataclass(frozen=True)
class ScaledEWC(EWC):
    """EWC's chain behind another transformation: its penalty state is no longer the optimiser state's first."""

    def optimizer(self, inner):
        return optax.chain(optax.scale(1.0), super().optimizer(inner))


def test_the_penalty_and_the_optimiser_state_are_found_by_name_wherever_the_chain_sits():
    after_0, state_0, _ = _two_tasks(ScaledEWC(strength=1.0, importance_samples=30), reset_optimizer=True)
    penalty = _penalty(state_0)
    importance = _flat(penalty.importance)
    assert (importance > 0).any()
    np.testing.assert_allclose(_flat(penalty.weighted_anchor), importance * after_0, rtol=1e-6, atol=0)
    adam = optax.tree_utils.tree_get(state_0, "ScaleByAdamState")  # reset at the task's end
    assert int(adam.count[0]) == 0 and not _flat(adam.mu).any() and not _flat(adam.nu).any()
