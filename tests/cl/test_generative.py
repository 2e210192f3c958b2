"""Generative replay (DGR, RtF): the VAE's loss against a hand computation, replay keeping old classes that naive
training forgets, and the generator's samples recorded after each task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods import generative
from acljax.cl.methods.base import Masks
from acljax.cl.methods.generative import DGR, Pixels, RtF, vae_init, vae_loss, vae_sample
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_loss_equals_a_hand_computation(likelihood):
    params = jax.tree.map(np.asarray, vae_init(jax.random.key(0), 3, (4, 5), 2))
    pixels = Pixels(np.float32(0.25), np.float32(0.5))
    x = (np.array([[0.5, 0.0, 1.0], [0.0, 0.3, 0.9]], np.float32) - pixels.mean) / pixels.std
    key = jax.random.key(1)
    eps = np.asarray(jax.random.normal(key, (2, 2)))  # the noise the loss draws from this key

    def layers(p, h):
        for layer in p[:-1]:
            h = np.maximum(h @ layer["w"] + layer["b"], 0)
        return h @ p[-1]["w"] + p[-1]["b"]

    encoded = layers(params["encoder"], x)
    mean, log_var = encoded[:, :2], encoded[:, 2:]
    z = mean + np.exp(log_var / 2) * eps
    decoded = layers(params["decoder"], z)
    if likelihood == "bernoulli":  # -log p(pixel) of pixels 0.5, 0, 1, ... under sigmoid(decoded)
        p = 1 / (1 + np.exp(-decoded))
        target = x * pixels.std + pixels.mean
        reconstruction = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum(-1)
    else:
        reconstruction = 0.5 * ((x - decoded) ** 2).sum(-1)
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var).sum(-1)  # KL(N(m, s^2) || N(0, 1)) per dimension
    np.testing.assert_allclose(vae_loss(params, jnp.asarray(x), key, likelihood, pixels),
                               (reconstruction + kl) / 3, rtol=1e-5)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_replay_distillation_targets_old_outputs_and_zero_on_new_ones():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 3, 6)).astype(np.float32)
    t = 2.0
    # class-IL: one head of 6 outputs, the teacher knew outputs 0-3
    single = Masks(np.ones(6, bool), np.ones((6, 6), bool), np.arange(6) < 4)
    targets = np.concatenate([_softmax(teacher[:, :4] / t), np.zeros((3, 2))], -1)
    expected = -t**2 * (targets * np.log(_softmax(student / t))).sum(-1)
    np.testing.assert_allclose(generative.replay_distillation(teacher, student, single, t), expected, rtol=1e-5)
    # task-IL: heads {0,1}, {2,3}, {4,5}; the teacher knew the first two; each input distils its likeliest head
    head_of = np.arange(6) // 2
    heads = Masks(np.arange(6) >= 4, head_of[:, None] == head_of[None, :], np.arange(6) < 4)
    expected = []
    for b in range(3):
        h = head_of[np.argmax(teacher[b, :4])] * 2 + np.arange(2)
        expected.append(-t**2 * (_softmax(teacher[b, h] / t) * np.log(_softmax(student[b, h] / t))).sum())
    np.testing.assert_allclose(generative.replay_distillation(teacher, student, heads, t), expected, rtol=1e-5)


def test_losses_reach_only_the_outputs_of_classes_seen_so_far():
    masks = Masks(np.ones(6, bool), np.ones((6, 6), bool), np.arange(6) < 2)  # class-IL, classes 0 and 1 learned
    np.testing.assert_array_equal(generative.seen_outputs(masks, jnp.array([2, 3, 2])), [1, 1, 1, 1, 0, 0])


def test_vae_samples_are_normalised_like_the_inputs():
    params = vae_init(jax.random.key(0), 4, (8,), 2)
    pixels = Pixels(np.float32(0.2), np.float32(0.4))
    samples = vae_sample(params, jax.random.key(1), 64, (2, 2), "bernoulli", pixels)
    assert samples.shape == (64, 2, 2)
    restored = samples * pixels.std + pixels.mean  # the decoder's pixel means: strictly inside (0, 1)
    assert 0 < restored.min() and restored.max() < 1


def test_generative_settings_are_checked():
    with pytest.raises(ValueError, match="DGR.likelihood must be one of"):
        DGR(likelihood="poisson")
    with pytest.raises(ValueError, match="DGR.vae_hidden must be"):
        DGR(vae_hidden=())
    with pytest.raises(ValueError, match="RtF.hidden must be"):
        RtF(hidden=(400, 0))


# DGR's separate VAE needs more steps on this tiny stream than RtF's shared network to make samples the
# previous solver labels as both old classes (at 10 epochs some seeds replay one class only)
@pytest.mark.parametrize("method, epochs", [(DGR(latent=4, vae_hidden=(64,)), 30), (RtF(latent=8, hidden=(16,)), 10)])
def test_generative_replay_keeps_old_classes_that_naive_forgets(method, epochs):
    s = stream("class")

    def run(method):
        config = SequentialConfig(method=method, hidden=(16,), epochs=epochs, batch_size=16, learning_rate=1e-2)
        learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
        return learner, evaluate(learner, s.tasks, [0, 1], progress=False).matrices

    _, naive = run("naive")
    learner, replay = run(method)
    assert naive[:, -1, :2].max() < 0.1  # naive: the first two tasks gone
    assert replay[:, -1, :2].mean() > 0.5  # replay: most of them kept
    assert learner._step._cache_size() == 1
    assert len(learner.samples) == 3 and learner.samples[0].shape == (16, 6, 6, 1)  # one batch per task
    assert 0 <= learner.samples[-1].min() and learner.samples[-1].max() <= 1
