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


def _log_softmax(z):
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _one_stored_example(method, x, y, logits=None):
    """A full memory holding copies of one example (so any memory batch is that example)."""
    empty = method.init_memory(None, (x.size,), 4)
    stored_x = jnp.broadcast_to(x, (method.memory_size, x.size))
    if logits is not None:
        stored_x = (stored_x, jnp.broadcast_to(logits, (method.memory_size, 4)))
    return empty._replace(x=stored_x, y=jnp.full(method.memory_size, y, jnp.int32),
                          valid=jnp.ones(method.memory_size, bool))


STORED_X, STORED_Y = np.array([0.5, -1.0, 2.0], np.float32), 1  # label 1: task 0's outputs {0, 1}
MASKS = Masks(np.ones(4, bool), np.repeat([[True, True, False, False], [False, False, True, True]], 2, 0),
              np.array([True, True, False, False]))


def test_er_ace_adds_the_mean_loss_of_the_memory_batch_on_its_tasks_outputs():
    rng = np.random.default_rng(1)
    w, x, y = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32), np.array([2, 3])
    method = ERACE(memory_size=8, memory_batch=4)
    memory = _one_stored_example(method, STORED_X, STORED_Y)
    loss = method.loss(lambda p, v: v @ p, jnp.asarray(w), memory, jnp.asarray(x), jnp.asarray(y), MASKS,
                       jax.random.key(0))
    current = _log_softmax((x @ w)[:, [2, 3]])  # old classes 0, 1 absent from the batch: masked out
    stored = _log_softmax(STORED_X @ w[:, :2])  # scored on task 0's outputs
    np.testing.assert_allclose(loss, -np.mean([current[0, 0], current[1, 1]]) - stored[STORED_Y], rtol=1e-5)


def test_derpp_loss_is_cross_entropy_plus_alpha_logit_error_plus_beta_stored_label_loss():
    rng = np.random.default_rng(2)
    w, x, y = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32), np.array([2, 3])
    stored_logits = rng.normal(size=4).astype(np.float32)
    method = DERpp(memory_size=8, memory_batch=4, alpha=0.3, beta=0.7)
    memory = _one_stored_example(method, STORED_X, STORED_Y, stored_logits)
    loss = method.loss(lambda p, v: v @ p, jnp.asarray(w), memory, jnp.asarray(x), jnp.asarray(y), MASKS,
                       jax.random.key(0))
    current = -np.mean(_log_softmax(x @ w)[[0, 1], y])
    logit_error = np.mean((STORED_X @ w - stored_logits) ** 2)
    stored_label = -_log_softmax(STORED_X @ w[:, :2])[STORED_Y]
    np.testing.assert_allclose(loss, current + 0.3 * logit_error + 0.7 * stored_label, rtol=1e-5)


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
