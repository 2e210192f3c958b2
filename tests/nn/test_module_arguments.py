"""Library misuse of the modules: one clear error naming the argument, what arrived and what is accepted,
at construction; the Linen twins take the NNX arguments (names, order, keyword-only) and refuse the same."""

import dataclasses
import inspect
import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from acljax import nn as acl_nn
from acljax.nn import linen as nn_linen
from acljax.srwm import SRWMOptions

IMAGE = (4, 4, 1)


def _abstract(make):
    """The module with parameters as shapes only: building real ones op by op takes seconds."""
    return nnx.eval_shape(make)


@pytest.mark.parametrize("name, args, kwargs, message", [
    ("SRWM", (16, 0), {}, "SRWM.num_heads must be a positive int, got 0"),
    ("SRWM", (16.0, 4), {}, "SRWM.num_features must be a positive int, got 16.0"),
    ("SRWM", (16, 4), {"options": {"impl": "scan"}},
     "SRWM.options must be an acljax.srwm.SRWMOptions (SRWMOptions(impl='scan', ...)), got {'impl': 'scan'}"),
    ("SRWMNet", (5, 3), {"options": None},
     "SRWMNet.options must be an acljax.srwm.SRWMOptions (SRWMOptions(impl='scan', ...)), got None"),
    ("SRWMLayer", (16, 3), {}, "SRWMLayer.num_features must be a positive multiple of num_heads=3 (D = H * d), got 16"),
    ("SRWMLayer", (16, 4), {"dropout_rate": 4}, "SRWMLayer.dropout_rate must be in [0, 1), got 4"),
    ("SRWMLayer", (16, 4), {"layer_norm_eps": 0.0}, "SRWMLayer.layer_norm_eps must be a finite number > 0, got 0.0"),
    ("SRWMBlock", (64, 4), {"dropout_rate": -0.1}, "SRWMBlock.dropout_rate must be in [0, 1), got -0.1"),
    ("SRWMBlock", (16, 4), {"hidden_features": -2}, "SRWMBlock.hidden_features must be a positive int or None, got -2"),
    ("FeedForward", (16, 0), {}, "FeedForward.hidden_features must be a positive int or None, got 0"),
    ("FeedForward", (0,), {}, "FeedForward.num_features must be a positive int, got 0"),
    ("SRWMNet", (5, 0), {}, "SRWMNet.out_features must be a positive int, got 0"),
    ("SRWMNet", (5, 3), {"num_blocks": 0}, "SRWMNet.num_blocks must be a positive int, got 0"),
    ("SRWMNet", (5, 3), {"num_features": 16, "num_heads": 5},
     "SRWMNet.num_features must be a positive multiple of num_heads=5 (D = H * d), got 16"),
])
def test_nnx_modules_and_their_linen_twins_refuse_the_same_arguments_alike(name, args, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        getattr(acl_nn, name)(*args, **kwargs, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        getattr(nn_linen, name)(*args, **kwargs)  # at construction, before init or apply


@pytest.mark.parametrize("field, value, accepted", [
    ("n_beta", 2, "1 (one shared learning rate) or 4 (one per block)"),
    ("n_beta", True, "1 (one shared learning rate) or 4 (one per block)"),
    ("init_scale", float("nan"), "a finite number"),
    ("q_init_scale", "0.01", "a finite number"),
    ("beta_init", float("inf"), "a finite number"),
    ("impl", "cuda", "'auto' or one of ['pallas', 'reference', 'reversible', 'scan', 'scan_remat']"),
    ("chunk_size", 0, "a positive int or None"),
    ("input_softmax", 1, "True or False"),
    ("state_gradient", "fast", "one of ('exact', 'official')"),
    ("precision", "fast", "one of ('highest', 'high', 'default')"),
])
def test_every_srwm_option_is_checked_in_one_error_naming_it(field, value, accepted):
    message = f"SRWMOptions.{field} must be {accepted}, got {value!r}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        SRWMOptions(**{field: value})
    SRWMOptions(**{field: getattr(SRWMOptions(), field)})  # the default passes


def test_the_srwm_options_default_to_the_papers_model_and_srwm_scans_default():
    from acljax.srwm import srwm_scan

    assert SRWMOptions() == SRWMOptions(n_beta=4, init_scale=1.0, q_init_scale=0.01, beta_init=0.0, impl="auto",
                                        chunk_size=None, input_softmax=False, state_gradient="exact",
                                        precision="highest")
    assert inspect.signature(srwm_scan).parameters["impl"].default == SRWMOptions().impl
    with pytest.raises(dataclasses.FrozenInstanceError):
        SRWMOptions().impl = "scan"


@pytest.mark.parametrize("name", ["SRWM", "SRWMLayer", "FeedForward", "SRWMBlock", "SRWMNet"])
def test_the_linen_twins_take_the_nnx_arguments(name):
    """Same names and defaults; the same positional ones in the same order, every other keyword-only."""
    def arguments(signature, own):  # own: the framework's keyword-only ones (NNX rngs, Linen parent and name)
        every = [p for p in signature.parameters.values() if p.name != "self"]
        kinds = inspect.Parameter
        assert {p.kind for p in every} == {kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY}
        positional = [(p.name, p.default) for p in every if p.kind == kinds.POSITIONAL_OR_KEYWORD]
        return positional, {p.name: p.default for p in every if p.kind == kinds.KEYWORD_ONLY and p.name not in own}

    nnx_arguments = arguments(inspect.signature(getattr(acl_nn, name).__init__), ("rngs",))
    assert arguments(inspect.signature(getattr(nn_linen, name)), ("parent", "name")) == nnx_arguments


def test_a_linen_block_written_as_in_nnx_is_the_nnx_block():
    """``SRWMBlock(num_features, num_heads)``: 4 heads of width 64 / 4 = 16 and the default dropout 0.1,
    positionally or by name; like NNX's, every other argument is keyword-only."""
    x = jnp.ones((1, 2, 64))
    nnx_block = _abstract(lambda: acl_nn.SRWMBlock(64, 4, rngs=nnx.Rngs(0)))
    nnx_shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(nnx_block, nnx.Param)))
    for block in (nn_linen.SRWMBlock(64, 4), nn_linen.SRWMBlock(num_features=64, num_heads=4)):
        assert (block.num_features, block.num_heads, block.dropout_rate) == (64, 4, 0.1)
        params = jax.eval_shape(block.init, jax.random.key(1), x)["params"]
        assert params["srwm_layer"]["srwm"]["w_y"].shape == (4, 16, 16)
        assert jax.tree.map(jnp.shape, params) == nnx_shapes
    for make in (lambda: nn_linen.SRWMBlock(64, 4, 0.1), lambda: acl_nn.SRWMBlock(64, 4, 0.1, rngs=nnx.Rngs(0))):
        with pytest.raises(TypeError, match="positional argument"):
            make()


def test_inputs_of_another_width_name_the_width_the_module_was_built_for():
    cell = _abstract(lambda: acl_nn.SRWMCell(16, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=re.escape("SRWMCell was built for num_features=16, but its input has 8 "
                                                   "features (shape (2, 8))")):
        nnx.RNN(cell)(jnp.ones((2, 3, 8)))
    with pytest.raises(ValueError, match="FeedForward was built for num_features=16, but its input has 8 features"):
        _abstract(lambda: acl_nn.FeedForward(16, rngs=nnx.Rngs(0)))(jnp.ones((2, 3, 8)))
    with pytest.raises(ValueError, match="FeedForward was built for num_features=16, but its input has 8 features"):
        jax.eval_shape(nn_linen.FeedForward(16).init, jax.random.key(0), jnp.ones((2, 3, 8)))
    message = "SRWMNet was built for in_features=5, but its input has 7 features"
    with pytest.raises(ValueError, match=message):
        _abstract(lambda: acl_nn.SRWMNet(5, 3, num_features=8, num_heads=2, rngs=nnx.Rngs(0)))(jnp.ones((2, 3, 7)))
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(nn_linen.SRWMNet(5, 3, num_features=8, num_heads=2).init, jax.random.key(0), jnp.ones((2, 3, 7)))


@pytest.mark.parametrize("kwargs, message", [
    ({"mlp_features": ()}, "InContextLearner.mlp_features must be a non-empty sequence of positive ints"),
    ({"mlp_features": [-5]}, r"InContextLearner.mlp_features must be .*, got \[-5\]"),
    ({"mlp_features": ["a"]}, r"InContextLearner.mlp_features must be .*, got \['a'\]"),
    ({"hidden_features": 0}, "InContextLearner.hidden_features must be a positive int or None, got 0"),
    ({"encoder": "conv4", "conv_channels": 0}, "InContextLearner.conv_channels must be a positive int, got 0"),
    ({"num_heads": 3}, "InContextLearner.num_features must be a positive multiple of num_heads=3"),
    ({"dropout_rate": 1.0}, r"InContextLearner.dropout_rate must be in \[0, 1\), got 1.0"),
])
def test_in_context_learner_refuses_bad_arguments_in_one_line(kwargs, message):
    options = dict(encoder="mlp", mlp_features=(8,), num_features=8, num_heads=2) | kwargs
    image = (16, 16, 1) if options["encoder"] == "conv4" else IMAGE
    with pytest.raises(ValueError, match=message):
        acl_nn.InContextLearner(image, 3, **options, rngs=nnx.Rngs(0))


def test_encoders_refuse_bad_widths():
    with pytest.raises(ValueError, match=r"MLPEncoder.features must be a non-empty sequence of positive ints"):
        acl_nn.MLPEncoder(16, features=(), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"Conv4.conv_channels must be a positive int, got 0"):
        acl_nn.Conv4(1, channels=0, rngs=nnx.Rngs(0))
    encoder = _abstract(lambda: acl_nn.MLPEncoder(16, features=(3,), rngs=nnx.Rngs(0)))
    assert nnx.eval_shape(lambda e, x: e(x), encoder, jnp.ones((2, *IMAGE))).shape == (2, 3)


def test_a_linen_subclass_with_fields_of_its_own_is_built_and_still_checked():
    from acljax.nn import linen

    class Tagged(linen.SRWMLayer):
        tag: str = "mine"

    assert Tagged(8, 2).tag == "mine"
    with pytest.raises(ValueError, match="Tagged.num_features must be a positive multiple of num_heads=3"):
        Tagged(8, 3)
