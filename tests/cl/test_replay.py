"""Replay buffers against their defining probabilities and A-GEM against a hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acljax.cl.replay import agem_project, class_balanced_add, init_buffer, reservoir_add, sample_buffer


def test_reservoir_fills_in_order_then_keeps_every_example_with_equal_probability():
    items = jnp.arange(20, dtype=jnp.float32)[:, None]
    labels = jnp.arange(20)
    partial = reservoir_add(init_buffer(5, (1,)), items[:3], labels[:3], jax.random.key(0))
    np.testing.assert_array_equal(partial.y[:3], [0, 1, 2])
    np.testing.assert_array_equal(partial.valid, [True, True, True, False, False])

    def kept(key):
        buffer = reservoir_add(init_buffer(5, (1,)), items, labels, key)
        return jnp.zeros(20).at[buffer.y].add(buffer.valid)

    frequency = np.asarray(jax.vmap(kept)(jax.random.split(jax.random.key(1), 4000)).mean(0))
    np.testing.assert_allclose(frequency, 5 / 20, atol=0.04)  # capacity / seen for every example
    assert frequency.sum() == pytest.approx(5.0)


def test_class_balanced_gives_every_class_its_share():
    labels = jnp.array([0] * 30 + [1] * 3 + [2] * 1)
    items = jnp.arange(34, dtype=jnp.float32)[:, None]

    def run(key):
        return class_balanced_add(init_buffer(6, (1,), num_classes=3), items, labels, key)

    buffer = run(jax.random.key(0))
    stored = np.asarray(buffer.y)[np.asarray(buffer.valid)]
    assert sorted(stored.tolist()) == [0, 0, 1, 1, 2]  # 2 slots per class; class 2 offered only once
    np.testing.assert_array_equal(buffer.seen, [30, 3, 1])
    buffers = jax.vmap(run)(jax.random.split(jax.random.key(1), 4000))
    x0 = np.asarray(buffers.x[:, :2, 0]).astype(int)  # class 0's two slots hold items 0..29
    frequency = np.bincount(x0.ravel(), minlength=30) / 4000
    np.testing.assert_allclose(frequency, 2 / 30, atol=0.03)


def test_sampling_reads_only_stored_examples():
    buffer = reservoir_add(init_buffer(8, (2,)), jnp.ones((3, 2)), jnp.array([4, 5, 6]), jax.random.key(0))
    x, y, valid = sample_buffer(buffer, jax.random.key(1), 50)
    assert valid.all() and set(np.asarray(y).tolist()) <= {4, 5, 6} and x.shape == (50, 2)
    _, _, valid_empty = sample_buffer(init_buffer(8, (2,)), jax.random.key(1), 5)
    assert not valid_empty.any()


def test_agem_projection_by_hand():
    g = {"a": jnp.array([1.0]), "b": jnp.array([0.0])}
    ref = {"a": jnp.array([-1.0]), "b": jnp.array([1.0])}
    out = agem_project(g, ref)  # g.ref = -1 < 0: g - (-1 / 2) ref = (0.5, 0.5), orthogonal to ref
    np.testing.assert_allclose([out["a"][0], out["b"][0]], [0.5, 0.5])
    aligned = agem_project(g, {"a": jnp.array([1.0]), "b": jnp.array([1.0])})
    np.testing.assert_allclose([aligned["a"][0], aligned["b"][0]], [1.0, 0.0])


def test_bad_buffers():
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        init_buffer(0, (1,))
    with pytest.raises(ValueError, match="num_classes must be an int in"):
        init_buffer(4, (1,), num_classes=5)
    with pytest.raises(ValueError, match="reservoir_add needs a buffer made with num_classes=None"):
        reservoir_add(init_buffer(4, (1,), num_classes=2), jnp.ones((1, 1)), jnp.zeros(1, int), jax.random.key(0))


def test_the_agem_method_projects_its_gradient_against_the_memory_gradient():
    """AGEM.adjust_gradients on a linear model whose memory holds one example, x = (1, 0) of class 0: at W = 0
    the memory loss's gradient is r = x (softmax(0) - onehot(0)) = [[-0.5, 0.5], [0, 0]] (times the number of
    examples sampled, which the projection does not see). g = [[1, -1], [0.3, 0]] conflicts with it
    (g . r = -1 < 0), so A-GEM returns g - (g . r / r . r) r = g + 2 r = [[0, 0], [0.3, 0]]."""
    from acljax.cl.methods import AGEM, Masks

    method = AGEM(memory_size=4, memory_batch=3)
    memory = reservoir_add(init_buffer(4, (2,)), jnp.tile(jnp.array([[1.0, 0.0]]), (4, 1)), jnp.zeros(4, int),
                           jax.random.key(0))
    masks = Masks(jnp.ones(2, bool), jnp.ones((2, 2), bool), jnp.zeros(2, bool))
    g = jnp.array([[1.0, -1.0], [0.3, 0.0]])
    out = method.adjust_gradients(lambda w, x: x @ w, jnp.zeros((2, 2)), memory, g, masks, jax.random.key(1))
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.3, 0.0]], atol=1e-6)
    aligned = -g  # no conflict: the gradient as it came
    np.testing.assert_allclose(method.adjust_gradients(lambda w, x: x @ w, jnp.zeros((2, 2)), memory, aligned, masks,
                                                       jax.random.key(1)), aligned)
