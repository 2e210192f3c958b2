"""Models for the sequential learner: NNX modules as (init, apply), the conv net against a hand-written loop,
and the learner training them with every seed in one program and no recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cl_streams import stream
from flax import nnx

from acljax.cl.methods import EWC
from acljax.cl.models import ConvNet, conv_model, nnx_model
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


class TwoLayer(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(36, 8, rngs=rngs)
        self.out = nnx.Linear(8, 6, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x.reshape(len(x), -1))))


ONE_QUERY = 1.5 / 40  # a tolerance of one flipped query, not two


def test_nnx_model_applies_the_module_to_its_parameters():
    model = nnx_model(TwoLayer)
    params = model.init(jax.random.key(3))
    x = np.random.default_rng(0).normal(size=(5, 6, 6, 1)).astype(np.float32)
    p = jax.tree.map(np.asarray, params)
    hidden = np.maximum(x.reshape(5, -1) @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0)
    np.testing.assert_allclose(model.apply(params, x), hidden @ p["out"]["kernel"] + p["out"]["bias"], rtol=1e-5,
                               atol=1e-6)
    other = model.init(jax.random.key(4))  # the key decides the draw
    assert not np.allclose(params["hidden"]["kernel"], other["hidden"]["kernel"])


def test_conv_net_equals_a_hand_written_loop():
    model = conv_model((4, 4, 1), 3, channels=(2,))
    params = model.init(jax.random.key(0))
    p = jax.tree.map(np.asarray, params)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 1)).astype(np.float32)
    kernel, bias = p["convs"][0]["kernel"], p["convs"][0]["bias"]  # (3, 3, 1, 2), (2,)
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    conv = np.zeros((2, 4, 4, 2), np.float32)
    for i in range(4):
        for j in range(4):
            conv[:, i, j] = np.einsum("nabc,abco->no", padded[:, i:i + 3, j:j + 3], kernel) + bias
    pooled = np.maximum(conv, 0).reshape(2, 2, 2, 2, 2, 2).max(axis=(2, 4))
    expected = pooled.reshape(2, -1) @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-5, atol=1e-6)


def test_conv_net_rejects_sizes_its_poolings_cannot_halve():
    with pytest.raises(ValueError, match=r"input_shape \(6, 6, 1\) must have height and width divisible by"):
        ConvNet((6, 6, 1), 3, channels=(8, 8), rngs=nnx.Rngs(0))


def test_a_model_with_running_statistics_is_refused():
    class WithBatchNorm(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(4, 2, rngs=rngs)
            self.norm = nnx.BatchNorm(2, rngs=rngs)

        def __call__(self, x):
            return self.norm(self.linear(x))

    with pytest.raises(ValueError, match="keeps running statistics"):
        nnx_model(WithBatchNorm)


@pytest.mark.parametrize("make_model", [lambda s: None, lambda s: nnx_model(TwoLayer)], ids=["conv", "nnx"])
def test_learner_trains_any_model_in_one_program(make_model):
    s = stream("task")
    config = SequentialConfig(method=EWC(strength=10.0, importance_samples=30), model="conv", channels=(8,),
                              hidden=(16,), epochs=3, batch_size=16, learning_rate=1e-2)

    def learner():
        return SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False, model=make_model(s))

    model = learner()
    together = evaluate(model, s.tasks, [0, 1], progress=False)
    assert model._step._cache_size() == 1  # three tasks, one compilation
    alone = evaluate(learner(), s.tasks, [1], progress=False)
    # the same arithmetic batched differently (vmapped seeds): trained parameters differ by rounding, so an
    # entry may differ by a query flipped at a near tie (40 test queries a task); a seed mixed up moves many
    np.testing.assert_allclose(together.matrices[1], alone.matrices[0], rtol=0, atol=ONE_QUERY)
    assert together.matrices[:, 0, 0].min() > 0.8  # task 0 learned (2-way, task-IL)
    assert jnp.ndim(jax.tree.leaves(model.params)[0]) >= 2  # a leading seed axis on every parameter
