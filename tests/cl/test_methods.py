"""The method protocol: a method the learner has never heard of plugs in, a name stands for the method with its
defaults, and a config's record (today's, or the old flat one) reads back as the config."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from cl_streams import stream

from acljax.cl.methods import DGR, EWC, Method, OnlineEWC, RtF, cross_entropy
from acljax.cl.models import mlp_model
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


@dataclasses.dataclass(frozen=True)
class PullToInit(Method):
    """A plug-in written outside acljax: the loss adds strength/2 |theta - theta_0|^2, theta_0 kept in memory."""

    strength: float = 0.0

    def init_memory(self, params, input_shape, num_outputs):
        return params

    def loss(self, apply, params, memory, x, y, masks, key):
        pull = sum(jnp.sum((p - p0) ** 2) for p, p0 in zip(jax.tree.leaves(params), jax.tree.leaves(memory)))
        return cross_entropy(apply, params, x, y, masks.current).mean() + self.strength / 2 * pull


def run(method, **kw):
    s = stream("class")
    config = SequentialConfig(method=method, hidden=(16,), epochs=2, batch_size=16, learning_rate=1e-2,
                              optimizer="sgd", **kw)
    learner = SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
    return learner, evaluate(learner, s.tasks, [0, 1], progress=False).matrices


def test_a_plugin_method_runs_without_the_learner_knowing_it():
    _, naive = run("naive")
    _, unpulled = run(PullToInit(strength=0.0))
    # a zero-weighted term: another program, so another rounding; an entry may differ by a query flipped at a
    # near tie (40 test queries a task)
    np.testing.assert_allclose(unpulled, naive, rtol=0, atol=1.5 / 40)
    start = jax.vmap(mlp_model((6, 6, 1), (16,), 6).init)(jnp.stack([jax.random.key(s) for s in (0, 1)]))

    def moved(learner):
        return max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(learner.params), jax.tree.leaves(start)))

    # strength = 1 / learning rate: each SGD step lands on theta_0 - lr * g (g the task gradient), so theta
    # stays one gradient step from theta_0 instead of drifting over the 42 steps of naive training
    pulled, _ = run(PullToInit(strength=100.0))
    assert pulled._step._cache_size() == 1
    assert moved(pulled) < moved(run("naive")[0]) / 4


def test_a_name_stands_for_the_method_with_its_defaults():
    assert SequentialConfig(method="online_ewc").method == OnlineEWC()
    assert SequentialConfig().method == Method()
    assert SequentialConfig(method="online_ewc").method_name == "online_ewc"


def test_a_config_record_reads_back_as_the_config():
    config = SequentialConfig(method=DGR(latent=4, vae_hidden=(8, 8)), hidden=(16,), optimizer="sgd")
    record = json.loads(json.dumps(config.to_dict()))
    assert record["method"] == {"name": "dgr", "latent": 4, "likelihood": "bernoulli", "vae_hidden": [8, 8]}
    assert record["hidden"] == [16] and "latent" not in record
    assert SequentialConfig.from_dict(record) == config
    for strength in (np.asarray(2.5, np.float32), jnp.asarray(2.5)):  # numpy and JAX scalars, which EWC's check
        record = SequentialConfig(method=EWC(strength=strength)).to_dict()  # accepts, stored as numbers
        assert record["method"]["strength"] == 2.5


def test_an_old_flat_record_gives_the_named_method_its_own_fields():
    old = {"method": "rtf", "optimizer": "adam", "learning_rate": 0.01, "strength": 5.0, "memory_size": 30,
           "latent": 8, "likelihood": "gaussian", "temperature": 3.0, "vae_hidden": [64], "hidden": [16],
           "epochs": 2, "reset_optimizer": True}  # RtF's network had the config's hidden sizes
    assert SequentialConfig.from_dict(old) == SequentialConfig(
        method=RtF(latent=8, likelihood="gaussian", temperature=3.0, hidden=(16,)), learning_rate=0.01,
        hidden=(16,), epochs=2, reset_optimizer=True)
    with pytest.raises(ValueError, match=r"unknown keys \['strenght'\]; accepted: \['batch_size', "):
        SequentialConfig.from_dict({"method": "ewc", "strenght": 1.0})
    with pytest.raises(ValueError, match=r"stored EWC has unknown keys \['gamma'\]; accepted: \['fisher_estimator'"):
        SequentialConfig.from_dict({"method": {"name": "ewc", "gamma": 0.5}})
    with pytest.raises(ValueError, match="method must be one of .* got 'PullToInit'"):
        SequentialConfig.from_dict(SequentialConfig(method=PullToInit()).to_dict())


def test_an_invalid_method_instance_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match="EWC.fisher_estimator must be one of"):
        EWC(fisher_estimator="diagonal")
    with pytest.raises(ValueError, match="method must be one of"):
        SequentialConfig(method=optax.adam)
