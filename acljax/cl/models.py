"""Classifiers for the sequential learner: any model as a pair of pure functions.

A :class:`Model` is ``init(key) -> params`` and ``apply(params, x (B, *input_shape)) -> logits (B, K)``;
the learner vmaps both over seeds. Built in: :func:`mlp_model` (Hsu et al.'s MLP, PyTorch's init) and
:func:`conv_model` (a small conv net for image streams); :func:`nnx_model` wraps any Flax NNX module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from acljax.nn.learner import max_pool_2x2

MODELS = ("mlp", "conv")


@dataclasses.dataclass(frozen=True)
class Model:
    """``init(key) -> params`` (a pytree of arrays), ``apply(params, x (B, *input_shape)) -> logits (B, K)``;
    ``layer_sizes`` for methods that build MLP columns of their own (progressive networks)."""

    init: Callable[[jax.Array], object]
    apply: Callable[[object, jax.Array], jax.Array]
    layer_sizes: tuple[int, ...] | None = None  # (inputs, hidden..., outputs) when it is a plain MLP


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> list[dict]:
    """PyTorch's default Linear init (uniform +-1/sqrt(fan_in) for weights and biases), as in Hsu et al."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1 / math.sqrt(fan_in)
        params.append({"w": jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                       "b": jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)})
    return params


def mlp(params: list[dict], x: jax.Array) -> jax.Array:
    """x (B, ...) -> logits (B, K); ReLU hidden layers."""
    h = x.reshape(len(x), -1)
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def mlp_model(input_shape: Sequence[int], hidden: Sequence[int], num_outputs: int) -> Model:
    """Flattened input -> ReLU layers of ``hidden`` sizes -> ``num_outputs`` logits."""
    sizes = (int(np.prod(input_shape)), *hidden, num_outputs)
    return Model(lambda key: init_mlp(key, sizes), mlp, sizes)


class ConvNet(nnx.Module):
    """Per entry of ``channels``: Conv3x3 (pad 1) -> ReLU -> MaxPool 2; then a linear head.

    ``x: (B, H, W, C) -> (B, num_outputs)``; H and W must stay even through every pooling.
    """

    def __init__(self, input_shape: Sequence[int], num_outputs: int, *, channels: Sequence[int] = (32, 32),
                 rngs: nnx.Rngs):
        height, width, in_channels = input_shape
        scale = 2 ** len(channels)
        if height % scale or width % scale:
            raise ValueError(f"ConvNet: input_shape {tuple(input_shape)} must have height and width divisible by "
                             f"2**len(channels) = {scale} (one 2x2 pooling per conv layer); use fewer channels")
        sizes = [in_channels, *channels]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding=1, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.head = nnx.Linear(channels[-1] * (height // scale) * (width // scale), num_outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = max_pool_2x2(jax.nn.relu(conv(x)))
        return self.head(x.reshape(x.shape[0], -1))


def nnx_functions(factory: Callable[[nnx.Rngs], nnx.Module]):
    """``factory(rngs)`` builds a Flax NNX module -> ``init(key) -> params`` (its ``nnx.Param`` variables as a
    pure dict) and ``call(params, *args) -> module(*args)``. The module runs in eval mode (``module.eval()``:
    dropout off) and any other state is held fixed, so modules that update state in their forward
    (BatchNorm's running statistics) are refused."""
    template = factory(nnx.Rngs(0))
    template.eval()
    graphdef, abstract, rest = nnx.split(template, nnx.Param, ...)
    running = [path for path, v in nnx.to_flat_state(rest) if isinstance(v, nnx.BatchStat)]
    if running:
        raise ValueError(f"nnx_model: the model keeps running statistics at {running[0]} (BatchNorm); the learner "
                         "holds non-parameter state fixed, so use a normalisation without it (LayerNorm, GroupNorm)")

    def init(key):
        return nnx.to_pure_dict(nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)[1])

    def call(params, *args):
        state = jax.tree.map(lambda a: a, abstract)  # fresh Variables, filled with params
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(graphdef, state, rest)(*args)

    return init, call


def nnx_model(factory: Callable[[nnx.Rngs], nnx.Module]) -> Model:
    """Any Flax NNX classifier, ``factory(rngs)`` building it, as a :class:`Model` (see :func:`nnx_functions`)."""
    return Model(*nnx_functions(factory))


def conv_model(input_shape: Sequence[int], num_outputs: int, channels: Sequence[int] = (32, 32)) -> Model:
    """:class:`ConvNet` as a :class:`Model`."""
    return nnx_model(lambda rngs: ConvNet(input_shape, num_outputs, channels=channels, rngs=rngs))
