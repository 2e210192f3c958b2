"""Generative replay (DGR, RtF): the VAE's loss against a hand computation, replay keeping old classes that naive
training forgets, and the generator's samples recorded after each task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods.generative import vae_init, vae_loss
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


def test_vae_loss_equals_a_hand_computation():
    params = jax.tree.map(np.asarray, vae_init(jax.random.key(0), 3, 4, 2))
    x = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], np.float32)
    key = jax.random.key(1)
    eps = np.asarray(jax.random.normal(key, (2, 2)))  # the noise the loss draws from this key

    def layers(p, h):
        h = np.maximum(h @ p[0]["w"] + p[0]["b"], 0)
        return h @ p[1]["w"] + p[1]["b"]

    encoded = layers(params["encoder"], x)
    mean, log_var = encoded[:, :2], encoded[:, 2:]
    z = mean + np.exp(log_var / 2) * eps
    reconstruction = 0.5 * ((x - layers(params["decoder"], z)) ** 2).sum(-1)
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var).sum(-1)  # KL(N(m, s^2) || N(0, 1)) per dimension
    np.testing.assert_allclose(vae_loss(params, jnp.asarray(x), key), reconstruction + kl, rtol=1e-5)


@pytest.mark.parametrize("method, kw", [("dgr", {"latent": 8, "vae_hidden": 32}), ("rtf", {"latent": 8})])
def test_generative_replay_keeps_old_classes_that_naive_forgets(method, kw):
    s = stream("class")

    def run(method, **kw):
        config = SequentialConfig(method=method, hidden=(16,), epochs=10, batch_size=16, learning_rate=1e-2, **kw)
        learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
        return learner, evaluate(learner, s.tasks, [0, 1], progress=False).matrices

    _, naive = run("naive")
    learner, replay = run(method, **kw)
    assert naive[:, -1, :2].max() < 0.1  # naive: the first two tasks gone
    assert replay[:, -1, :2].mean() > 0.5  # replay: most of them kept
    assert learner._step._cache_size() == 1
    assert len(learner.samples) == 3 and learner.samples[0].shape == (16, 6, 6, 1)  # one batch per task
    assert 0 <= learner.samples[-1].min() and learner.samples[-1].max() <= 1
