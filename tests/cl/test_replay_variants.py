"""ER-ACE and DER++: the asymmetric loss against a hand computation, DER++'s stored logits against the network
that made them, and both keeping old classes that naive training forgets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods import ERACE, DERpp, Masks
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


def test_er_ace_masks_absent_old_classes_on_the_current_batch():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    y = np.array([2, 0])
    masks = Masks(np.ones(4, bool), np.ones((4, 4), bool), np.array([True, True, False, False]))
    method = ERACE(memory_size=8, memory_batch=4)
    empty = method.init_memory(None, (3,), 4)  # nothing stored yet: the memory term is 0
    loss = method.loss(lambda p, v: v @ p, jnp.asarray(w), empty, jnp.asarray(x), jnp.asarray(y), masks,
                       jax.random.key(0))
    logits = x @ w
    kept = [0, 2, 3]  # output 1: an earlier task's class, absent from the batch -> masked out
    log_p = logits[:, kept] - np.log(np.exp(logits[:, kept]).sum(-1, keepdims=True))
    expected = -np.mean([log_p[0, kept.index(2)], log_p[1, kept.index(0)]])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def _run(method):
    s = stream("class")
    config = SequentialConfig(method=method, hidden=(16,), epochs=10, batch_size=16, learning_rate=1e-2)
    learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
    return learner, s, evaluate(learner, s.tasks, [0, 1], progress=False).matrices


def test_derpp_stores_the_logits_the_network_gave_at_the_end_of_the_task():
    s = stream("class")
    config = SequentialConfig(method=DERpp(memory_size=30), hidden=(16,), epochs=2, batch_size=16)
    learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
    learner.reset([0, 1])
    learner.learn(0, s.tasks[0])
    (stored_x, stored_logits), valid = learner.memory.x, np.asarray(learner.memory.valid)
    recomputed = jax.vmap(learner.model.apply)(learner.params, stored_x)
    assert valid.all()  # 30 of task 0's 120 examples
    np.testing.assert_allclose(np.asarray(stored_logits), np.asarray(recomputed), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", [ERACE(memory_size=30, memory_batch=16), DERpp(memory_size=30, memory_batch=16)])
def test_keeps_old_classes_that_naive_forgets(method):
    _, _, naive = _run("naive")
    learner, _, kept = _run(method)
    assert naive[:, -1, :2].max() < 0.1
    assert kept[:, -1, :2].mean() > 0.5
    assert learner._step._cache_size() == 1


def test_derpp_weights_are_checked():
    with pytest.raises(ValueError, match="DERpp.alpha must be a finite number >= 0, got -1.0"):
        DERpp(alpha=-1.0)
