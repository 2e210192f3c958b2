"""Flax Linen twins of the NNX modules, over the same functional core, for Linen users.

Same arguments as ``acljax.nn`` (names, order, which are keyword-only, the SRWM options as one
:class:`acljax.srwm.SRWMOptions` ``options=``; checked at construction by the same
``acljax.nn.srwm.check_module_arguments``), same computation, same parameter names and shapes:
``SRWM`` holds ``w_y, w_q, w_k, w_b``; ``SRWMLayer`` ``srwm``, ``out_proj`` (no bias) and ``norm``;
``FeedForward`` ``norm``, ``linear1``, ``linear2``; ``SRWMBlock`` ``srwm_layer`` and ``feed_forward``;
``SRWMNet`` ``in_proj``, ``blocks_0 .. blocks_{n-1}`` and ``head`` (NNX: ``blocks/0 ..``). Dropout is
active when ``deterministic=False`` (give a ``"dropout"`` rng).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from acljax.nn.srwm import (
    MODULE_ARGUMENTS,
    Residual,
    apply_srwm,
    check_features,
    check_module_arguments,
    initial_weights,
)
from acljax.srwm import SRWMOptions, SRWMState
from acljax.srwm.api import validate_input


class _Checked(nn.Module):
    """Checks its arguments at construction, as the NNX modules do (Linen modules are dataclasses)."""

    def __post_init__(self):
        check_module_arguments(type(self).__name__, **{  # a subclass's own fields are its own to check
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name in MODULE_ARGUMENTS})
        super().__post_init__()


def _fields_of(module: nn.Module, cls: type) -> dict:
    """``module``'s values of the constructor fields of ``cls`` (its class or a base), Linen's own aside."""
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(cls)
            if f.init and f.name not in ("parent", "name")}


class SRWM(_Checked):
    """Bare SRWM: ``x: (B, T, D)``, optional state -> ``(y (B, T, D), final_state)``; ``update=False`` reads
    against the incoming state (W_0 without one) and returns it, as :class:`acljax.nn.SRWM`."""

    num_features: int
    num_heads: int
    _: dataclasses.KW_ONLY
    options: SRWMOptions = SRWMOptions()
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True):
        validate_input(x, rank=3, layout="(B, T, D)")
        x = x if self.dtype is None else x.astype(self.dtype)
        head_dim = self.num_features // self.num_heads

        def block_init(name):
            return lambda key: getattr(initial_weights(key, self.num_heads, head_dim, self.options),
                                       name).astype(self.param_dtype)

        w0 = SRWMState(*(self.param(name, block_init(name)) for name in SRWMState._fields))
        return apply_srwm(w0, x, state, update=update, options=self.options)


class _LayerFields(_Checked):
    """The keyword-only fields of :class:`SRWMLayer`, :class:`SRWMBlock` and :class:`SRWMNet` (a base only)."""

    _: dataclasses.KW_ONLY
    dropout_rate: float = 0.1
    residual: Residual = "paper"
    layer_norm_eps: float = 1e-5
    options: SRWMOptions = SRWMOptions()
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32


class SRWMLayer(_LayerFields):
    """Twin of :class:`acljax.nn.SRWMLayer` (same residual forms, carried-state options and read path)."""

    num_features: int
    num_heads: int
    _: dataclasses.KW_ONLY

    @nn.compact
    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True,
                 deterministic: bool = True):
        dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        srwm = SRWM(self.num_features, self.num_heads, options=self.options, name="srwm", **dtypes)
        norm = nn.LayerNorm(epsilon=self.layer_norm_eps, name="norm", **dtypes)
        core_in = x if self.residual == "paper" else norm(x)
        y, final = srwm(core_in, state, update=update)
        change = nn.Dense(self.num_features, use_bias=False, name="out_proj", **dtypes)(y)
        change = nn.Dropout(self.dropout_rate)(change, deterministic=deterministic)
        skip = norm(x) if self.residual == "paper" else x
        return skip + change, final


class FeedForward(_Checked):
    """Twin of :class:`acljax.nn.FeedForward`: pre-LN, D -> hidden (default 2 D) -> D, residual."""

    num_features: int
    hidden_features: int | None = None
    _: dataclasses.KW_ONLY
    dropout_rate: float = 0.1
    layer_norm_eps: float = 1e-5
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_features("FeedForward", x.shape, self.num_features)
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        dropout = nn.Dropout(self.dropout_rate)
        h = nn.LayerNorm(epsilon=self.layer_norm_eps, name="norm", **dense)(x)
        h = nn.Dense(self.hidden_features or 2 * self.num_features, name="linear1", **dense)(h)
        h = dropout(jax.nn.relu(h), deterministic=deterministic)
        return x + dropout(nn.Dense(self.num_features, name="linear2", **dense)(h), deterministic=deterministic)


class SRWMBlock(SRWMLayer):
    """Twin of :class:`acljax.nn.SRWMBlock`: ``SRWMBlock(num_features, num_heads, *, hidden_features, ...)``, an
    :class:`SRWMLayer` (every field of which it has), then a :class:`FeedForward` (hidden default 2 D)."""

    _: dataclasses.KW_ONLY
    hidden_features: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True,
                 deterministic: bool = True):
        layer = SRWMLayer(**_fields_of(self, SRWMLayer), name="srwm_layer")
        h, final = layer(x, state, update=update, deterministic=deterministic)
        out = FeedForward(self.num_features, self.hidden_features, dropout_rate=self.dropout_rate,
                          layer_norm_eps=self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="feed_forward")(h, deterministic=deterministic)
        return out, final


class SRWMNet(_LayerFields):
    """Twin of :class:`acljax.nn.SRWMNet`: ``Dense(D)``, ``num_blocks`` x :class:`SRWMBlock`, ``Dense(out)``.
    Call: ``x (B, T, in_features)``, optional per-block states -> ``(logits (B, T, out), states)``."""

    in_features: int
    out_features: int
    _: dataclasses.KW_ONLY
    num_features: int = 256
    num_heads: int = 16
    num_blocks: int = 2
    hidden_features: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, states: tuple[SRWMState, ...] | None = None, *, update: bool = True,
                 deterministic: bool = True):
        if states is not None and len(states) != self.num_blocks:
            raise ValueError(f"states must hold one state per block ({self.num_blocks}), got {len(states)}")
        check_features("SRWMNet", x.shape, self.in_features, "in_features")
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.Dense(self.num_features, name="in_proj", **dense)(x)
        finals = []
        for i in range(self.num_blocks):
            block = SRWMBlock(self.num_features, self.num_heads, hidden_features=self.hidden_features,
                              **_fields_of(self, _LayerFields), name=f"blocks_{i}")
            h, final = block(h, None if states is None else states[i], update=update, deterministic=deterministic)
            finals.append(final)
        return nn.Dense(self.out_features, name="head", **dense)(h), tuple(finals)


__all__ = ["SRWM", "FeedForward", "SRWMBlock", "SRWMLayer", "SRWMNet"]
