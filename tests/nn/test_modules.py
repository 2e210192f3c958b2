"""Flax modules over the SRWM core: agreement with the core, hand-built residual forms, Linen twins."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from acljax.nn import SRWM, FeedForward, SRWMBlock, SRWMCell, SRWMLayer, SRWMNet
from acljax.nn import linen as nn_linen
from acljax.srwm import SRWMOptions, broadcast_state, srwm_scan

D, H = 16, 4


def _x(seed=0, batch=2, steps=7, features=D):
    return jax.random.normal(jax.random.key(seed), (batch, steps, features))


def _layer_norm(x, eps=1e-5):  # scale 1, bias 0 at initialisation
    x = np.asarray(x, np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def _core(w0, x, **options):
    y, _ = srwm_scan(w0, jnp.asarray(x, jnp.float32).reshape(*x.shape[:2], H, D // H), impl="scan", **options)
    return np.asarray(y).reshape(x.shape)


@pytest.mark.parametrize("residual", ["paper", "pre_ln"])
def test_layer_matches_hand_composition(residual):
    layer = SRWMLayer(D, H, residual=residual, rngs=nnx.Rngs(0))
    layer.eval()
    x = _x()
    out, _ = layer(x)
    kernel = np.asarray(layer.out_proj.kernel[...])
    if residual == "paper":
        expected = _layer_norm(x) + _core(layer.srwm.initial_state, x) @ kernel
    else:
        expected = np.asarray(x) + _core(layer.srwm.initial_state, _layer_norm(x)) @ kernel
    np.testing.assert_allclose(out, expected, atol=2e-5)


@pytest.mark.parametrize("options", [SRWMOptions(), SRWMOptions(n_beta=1, input_softmax=True, precision="high")])
def test_rnn_of_cell_matches_core(options):
    """A step uses W_0's initialisation (n_beta: w_b's width), input_softmax and precision of its options."""
    cell = SRWMCell(D, H, options=options, rngs=nnx.Rngs(1))
    assert cell.srwm.initial_state.w_b.shape == (H, D // H, options.n_beta)
    x = _x()
    carry, y = nnx.RNN(cell, return_carry=True)(x)
    step_options = dict(input_softmax=options.input_softmax, precision=options.precision)
    np.testing.assert_allclose(y, _core(cell.srwm.initial_state, x, **step_options), atol=1e-6)
    _, final = srwm_scan(cell.srwm.initial_state, x.reshape(2, 7, H, D // H), impl="scan", **step_options)
    for a, b in zip(carry, final):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_streaming_equals_one_call_and_jit_equals_eager():
    block = SRWMBlock(D, H, rngs=nnx.Rngs(2))
    block.eval()
    x = _x(steps=10)
    out, final = block(x)
    out1, mid = block(x[:, :6])
    out2, final2 = block(x[:, 6:], mid)
    np.testing.assert_allclose(jnp.concatenate([out1, out2], 1), out, atol=1e-5)
    for a, b in zip(final2, final):
        np.testing.assert_allclose(a, b, atol=1e-6)
    out_jit, _ = nnx.jit(lambda m, x: m(x))(block, x)
    np.testing.assert_allclose(out_jit, out, atol=1e-5)


def test_official_state_gradient_adds_the_identity_path():
    """Official carry = exact carry + d loss / d (incoming state), summed over the batch, in W_0's gradient."""
    x = _x(steps=8)
    grads, values = {}, {}
    for mode in ("exact", "official"):
        layer = SRWMLayer(D, H, options=SRWMOptions(state_gradient=mode), rngs=nnx.Rngs(3))
        layer.eval()

        def loss(layer):
            _, mid = layer(x[:, :4])
            out, _ = layer(x[:, 4:], mid)
            return jnp.sum(jnp.sin(out)), out

        (_, values[mode]), g = nnx.value_and_grad(loss, has_aux=True)(layer)
        grads[mode] = g.srwm.w_y[...]
    np.testing.assert_allclose(values["official"], values["exact"], atol=1e-6)  # same forward values

    layer = SRWMLayer(D, H, rngs=nnx.Rngs(3))
    layer.eval()
    _, mid = layer(x[:, :4])
    d_mid = jax.grad(lambda s: jnp.sum(jnp.sin(layer(x[:, 4:], s)[0])))(mid)
    np.testing.assert_allclose(grads["official"], grads["exact"] + d_mid.w_y.sum(0), atol=1e-5)
    assert float(jnp.abs(d_mid.w_y).max()) > 1e-3  # the two modes really differ


def _as_linen(params: dict) -> dict:
    """NNX parameters as a Linen tree: nnx.List entries ``blocks/i`` are Linen's ``blocks_i``."""
    out = {}
    for key, value in params.items():
        if key == "blocks":
            out.update({f"blocks_{i}": _as_linen(v) for i, v in value.items()})
        else:
            out[key] = _as_linen(value) if isinstance(value, dict) else value
    return out


NON_DEFAULT = dict(options=SRWMOptions(n_beta=1, input_softmax=True, impl="scan_remat", chunk_size=3,
                                       state_gradient="official", init_scale=0.5, q_init_scale=0.05, beta_init=-1.0,
                                       precision="high"))


@pytest.mark.parametrize("name, nnx_module, linen_module", [
    ("SRWM", lambda: SRWM(D, H, **NON_DEFAULT, rngs=nnx.Rngs(4)), lambda: nn_linen.SRWM(D, H, **NON_DEFAULT)),
    ("SRWMLayer", lambda: SRWMLayer(D, H, residual="pre_ln", layer_norm_eps=1e-3, **NON_DEFAULT, rngs=nnx.Rngs(4)),
     lambda: nn_linen.SRWMLayer(D, H, residual="pre_ln", layer_norm_eps=1e-3, **NON_DEFAULT)),
    ("FeedForward", lambda: FeedForward(D, 24, layer_norm_eps=1e-3, rngs=nnx.Rngs(4)),
     lambda: nn_linen.FeedForward(D, 24, layer_norm_eps=1e-3)),
    ("SRWMBlock", lambda: SRWMBlock(D, H, hidden_features=24, **NON_DEFAULT, rngs=nnx.Rngs(4)),
     lambda: nn_linen.SRWMBlock(D, H, hidden_features=24, **NON_DEFAULT)),
    ("SRWMBlock", lambda: SRWMBlock(D, H, residual="pre_ln", layer_norm_eps=1e-3, **NON_DEFAULT, rngs=nnx.Rngs(4)),
     lambda: nn_linen.SRWMBlock(D, H, residual="pre_ln", layer_norm_eps=1e-3, **NON_DEFAULT)),
    ("SRWMNet", lambda: SRWMNet(5, 3, num_features=D, num_heads=H, num_blocks=3, hidden_features=24, **NON_DEFAULT,
                                rngs=nnx.Rngs(4)),
     lambda: nn_linen.SRWMNet(5, 3, num_features=D, num_heads=H, num_blocks=3, hidden_features=24, **NON_DEFAULT)),
])
def test_linen_twins_equal_the_nnx_modules_for_the_same_parameters(name, nnx_module, linen_module):
    """Same parameter tree (names and shapes), same outputs and states: a fresh sequence, a carried state
    and the read path (update=False), with non-default arguments throughout."""
    module, twin = nnx_module(), linen_module()
    module.eval()
    x = jax.random.normal(jax.random.key(1), (2, 7, 5 if name == "SRWMNet" else D))
    params = _as_linen(nnx.to_pure_dict(nnx.state(module, nnx.Param)))
    init = twin.init(jax.random.key(0), x)["params"]
    assert jax.tree.map(jnp.shape, init) == jax.tree.map(jnp.shape, params)
    if name == "FeedForward":
        np.testing.assert_allclose(twin.apply({"params": params}, x), module(x), atol=1e-6)
        return
    out, state = module(x)
    out_l, state_l = twin.apply({"params": params}, x)
    np.testing.assert_allclose(out_l, out, atol=1e-6)
    chex.assert_trees_all_close(state_l, state, atol=1e-6)
    for update in (True, False):  # continuing the sequence, and reading queries against its state
        out, _ = module(x, state, update=update)
        out_l, _ = twin.apply({"params": params}, x, state_l, update=update)
        np.testing.assert_allclose(out_l, out, atol=1e-6)


def test_dtypes_reach_every_parameter_and_the_output():
    net = SRWMNet(5, 3, num_features=D, num_heads=H, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert {p.dtype for p in jax.tree.leaves(nnx.state(net, nnx.Param))} == {jnp.dtype(jnp.bfloat16)}
    logits, states = net(jnp.ones((2, 4, 5), jnp.float32))
    assert logits.dtype == jnp.bfloat16 and states[0].w_y.dtype == jnp.float32  # the fast weights stay float32
    twin = nn_linen.SRWMNet(5, 3, num_features=D, num_heads=H, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    params = twin.init(jax.random.key(0), jnp.ones((2, 4, 5)))["params"]
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}


def test_reading_without_a_state_reads_w0_and_returns_it():
    layer = SRWM(D, H, rngs=nnx.Rngs(0))
    x = _x()
    y, state = layer(x, update=False)
    chex.assert_trees_all_equal(state, layer.initial_state)
    first, _ = layer(x[:, :1])  # the first step of a sequence reads W_0 before any update
    np.testing.assert_allclose(y[:, :1], first, atol=1e-6)


def test_memory_saving_layer_matches_the_default():
    x = _x(steps=30)
    outs = []
    for kw in ({}, {"options": SRWMOptions(impl="scan_remat", chunk_size=7)}):
        layer = SRWMLayer(D, H, rngs=nnx.Rngs(7), **kw)
        layer.eval()
        outs.append(layer(x)[0])
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)


def test_dropout_is_active_in_training_only():
    layer = SRWMLayer(D, H, dropout_rate=0.5, rngs=nnx.Rngs(5))
    x = _x()
    a, _ = layer(x)
    b, _ = layer(x)
    assert float(jnp.abs(a - b).max()) > 1e-3
    layer.eval()
    c, _ = layer(x)
    d, _ = layer(x)
    np.testing.assert_array_equal(c, d)


def test_net_carries_one_state_per_block():
    net = SRWMNet(5, 3, num_features=D, num_heads=H, num_blocks=3, dropout_rate=0.0, rngs=nnx.Rngs(6))
    x = _x(features=5, steps=6)
    logits, states = net(x)
    assert logits.shape == (2, 6, 3) and len(states) == 3
    logits2, _ = net(x[:, 3:], net(x[:, :3])[1])
    np.testing.assert_allclose(logits2, logits[:, 3:], atol=1e-5)
    with pytest.raises(ValueError, match="one state per block"):
        net(x, states[:2])


def test_net_reads_queries_without_learning_from_them():
    """update=False on Q positions = each position run alone as a one-step continuation, states unchanged."""
    net = SRWMNet(5, 3, num_features=D, num_heads=H, num_blocks=2, dropout_rate=0.0, rngs=nnx.Rngs(6))
    _, states = net(_x(features=5, steps=6))
    queries = _x(seed=1, features=5, steps=4)
    read, kept = net(queries, states, update=False)
    one_by_one = [net(queries[:, q:q + 1], states)[0] for q in range(4)]
    np.testing.assert_allclose(read, jnp.concatenate(one_by_one, axis=1), atol=1e-5)
    assert all(k is s for k, s in zip(kept, states, strict=True))


@pytest.mark.parametrize("make, message", [
    (lambda: SRWMLayer(15, 4, rngs=nnx.Rngs(0)), "num_features must be a positive multiple of num_heads=4"),
    (lambda: SRWMLayer(16, 4, residual="post", rngs=nnx.Rngs(0)), "residual must be one of"),
    (lambda: SRWMLayer(16, 4, options=SRWMOptions(state_gradient="fast"), rngs=nnx.Rngs(0)),
     "SRWMOptions.state_gradient must be one of"),
    (lambda: SRWMLayer(16, 4, dropout_rate=1.5, rngs=nnx.Rngs(0)), "dropout_rate must be in"),
    (lambda: SRWMLayer(16, 4, options=SRWMOptions(impl="cuda"), rngs=nnx.Rngs(0)),
     "SRWMOptions.impl must be 'auto' or one of"),
    (lambda: SRWMLayer(16, 4, options={"impl": "scan"}, rngs=nnx.Rngs(0)),
     "SRWMLayer.options must be an acljax.srwm.SRWMOptions"),
])
def test_bad_module_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_call_inputs():
    layer = SRWMLayer(D, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"x must have rank 3 \(B, T, D\)"):
        layer(jnp.ones((2, D)))
    with pytest.raises(ValueError, match="x must have 16 features"):
        layer(jnp.ones((2, 3, 12)))
    with pytest.raises(ValueError, match="x must be floating point"):
        layer(jnp.ones((2, 3, D), jnp.int32))
    state = broadcast_state(layer.srwm.initial_state, 2)
    with pytest.raises(ValueError, match="state has 4 heads but the input has 2"):
        SRWMLayer(D, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 3, D)), state)


def test_max_pool_2x2_matches_flax_max_pool_and_its_gradient():
    from acljax.nn.learner import max_pool_2x2

    x = jax.random.normal(jax.random.key(0), (3, 8, 6, 4))  # no ties: every gradient goes to one element

    def reference(x):
        return nnx.max_pool(x, (2, 2), (2, 2))

    np.testing.assert_array_equal(max_pool_2x2(x), reference(x))
    weights = jax.random.normal(jax.random.key(1), (3, 4, 3, 4))
    grad, expected = (jax.grad(lambda x, f=f: jnp.sum(weights * f(x)))(x) for f in (max_pool_2x2, reference))
    np.testing.assert_array_equal(grad, expected)
    tied = jnp.ones((1, 2, 2, 1))  # a window of equal values: the gradient is shared, its sum kept
    np.testing.assert_allclose(jax.grad(lambda x: max_pool_2x2(x).sum())(tied), np.full((1, 2, 2, 1), 0.25))
