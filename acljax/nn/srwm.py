"""Flax NNX modules over the functional SRWM core.

Every SRWM module takes the SRWM options whole, as one :class:`acljax.srwm.SRWMOptions` (``options=``), and
passes them down; besides, ``dtype`` (the computation dtype of inputs and outputs; None: the input's) and
``param_dtype`` (of every parameter). The fast-weight state itself runs in at least float32 whatever the dtypes.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from acljax.checks import OPTIONAL_POSITIVE_INT, POSITIVE_INT, check_arguments, is_finite_number, one_of
from acljax.srwm import SRWMState, broadcast_state, init_state, srwm_read, srwm_scan, srwm_step, validate_state
from acljax.srwm.api import validate_input
from acljax.srwm.options import SRWMOptions
from acljax.srwm.state import continue_from

RESIDUALS = ("paper", "pre_ln")
Residual = Literal["paper", "pre_ln"]

# argument -> (accepts(value), what is accepted): the one check of the NNX modules and their Linen twins
# (the SRWM options check themselves: SRWMOptions)
MODULE_ARGUMENTS = {
    **dict.fromkeys(("in_features", "out_features", "num_features", "num_heads", "num_blocks", "num_classes",
                     "conv_channels"), POSITIVE_INT),
    "hidden_features": OPTIONAL_POSITIVE_INT,
    "dropout_rate": (lambda v: is_finite_number(v) and 0 <= v < 1, "in [0, 1)"),
    "layer_norm_eps": (lambda v: is_finite_number(v) and v > 0, "a finite number > 0"),
    "residual": one_of(RESIDUALS),
    "options": (lambda v: isinstance(v, SRWMOptions), "an acljax.srwm.SRWMOptions (SRWMOptions(impl='scan', ...))"),
}


def check_module_arguments(owner: str, **arguments) -> None:
    """Raise one ValueError naming ``owner.argument``, what arrived and what is accepted, for the first bad
    argument (names from :data:`MODULE_ARGUMENTS`), or for ``num_features`` not divisible by ``num_heads``."""
    check_arguments(owner, MODULE_ARGUMENTS, arguments)
    features, heads = arguments.get("num_features"), arguments.get("num_heads")
    if features is not None and heads is not None and features % heads:
        raise ValueError(f"{owner}.num_features must be a positive multiple of num_heads={heads} (D = H * d), "
                         f"got {features!r}")


def module_arguments(local_vars: dict) -> dict:
    """A module's own arguments from ``locals()`` at the top of its ``__init__``, without ``self``, ``rngs``
    and the dtypes (which their layers check)."""
    return {k: v for k, v in local_vars.items() if k not in ("self", "rngs", "dtype", "param_dtype", "__class__")}


def check_features(owner: str, shape: tuple[int, ...], expected: int, argument: str = "num_features") -> None:
    """An input of ``shape`` must have the ``expected`` features (last axis) the module was built for."""
    if shape[-1] != expected:
        raise ValueError(f"{owner} was built for {argument}={expected}, but its input has {shape[-1]} features "
                         f"(shape {tuple(shape)})")


def apply_srwm(w0: SRWMState, x: jax.Array, state: SRWMState | None, *, update: bool, options: SRWMOptions):
    """What the SRWM modules (NNX and Linen) compute: ``x (B, T, H * d)`` from W_0 (shared) or an incoming
    state (continued per ``options.state_gradient``) -> ``(y (B, T, H * d_out), state)``, the final state, or
    with ``update=False`` the state read against (the incoming one, else W_0)."""
    batch, steps, features = x.shape
    num_heads, head_dim = w0.num_heads, w0.head_dim
    if features != num_heads * head_dim:
        raise ValueError(f"x must have {num_heads * head_dim} features (D = H * d), got shape {x.shape}")
    start = w0
    if state is not None:
        validate_state(state, num_heads=num_heads, head_dim=head_dim)
        start = continue_from(state, w0, options.state_gradient)
    heads = x.reshape(batch, steps, num_heads, head_dim)
    if not update:
        y = srwm_read(start, heads, input_softmax=options.input_softmax, precision=options.precision)
        return y.reshape(batch, steps, -1), start if state is None else state
    y, final = srwm_scan(start, heads, impl=options.impl, chunk_size=options.chunk_size,
                         input_softmax=options.input_softmax, precision=options.precision)
    return y.reshape(batch, steps, -1), final


def initial_weights(key: jax.Array, num_heads: int, head_dim: int, options: SRWMOptions) -> SRWMState:
    """W_0 as ``options`` initialise it: w_y, w_q, w_k (H, d, d), w_b (H, d, n_beta)."""
    return init_state(key, num_heads, head_dim, n_beta=options.n_beta, init_scale=options.init_scale,
                      q_init_scale=options.q_init_scale, beta_init=options.beta_init)


class SRWM(nnx.Module):
    """The bare self-referential weight matrix: trainable W_0 and the recurrence.

    ``x: (B, T, D)`` with ``D = H * d`` -> ``y: (B, T, H * d)`` and the final state (B, H, ...).
    An incoming state continues a sequence (``options.state_gradient``, see :func:`acljax.srwm.continue_from`).
    ``update=False`` reads every position against the incoming state (W_0 when there is none) without
    changing it (each position gets the output it would get as the first step after that state: queries
    that do not learn) and returns that state.
    """

    def __init__(self, num_features: int, num_heads: int, *, options: SRWMOptions = SRWMOptions(), dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("SRWM", **module_arguments(locals()))
        self.options = options
        self.num_heads = num_heads
        self.head_dim = num_features // num_heads
        self.dtype = dtype
        w0 = initial_weights(rngs.params(), num_heads, self.head_dim, options)
        self.w_y, self.w_q, self.w_k, self.w_b = (nnx.Param(w.astype(param_dtype)) for w in w0)

    @property
    def initial_state(self) -> SRWMState:
        """The initial fast weights W_0, one for the whole batch (w_y (H, d, d), w_q/w_k (H, d, d),
        w_b (H, d, n_beta))."""
        return SRWMState(self.w_y[...], self.w_q[...], self.w_k[...], self.w_b[...])

    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True):
        validate_input(x, rank=3, layout="(B, T, D)")
        return apply_srwm(self.initial_state, x if self.dtype is None else x.astype(self.dtype), state,
                          update=update, options=self.options)


class SRWMLayer(nnx.Module):
    """SRWM sub-layer with output projection, dropout and a residual connection.

    ``residual="paper"`` (ACL): ``out = LayerNorm(x) + Dropout(Linear(SRWM(x)))``;
    ``residual="pre_ln"``: ``out = x + Dropout(Linear(SRWM(LayerNorm(x))))``.

    ``options.state_gradient="official"`` reproduces the ACL code's carried state ``W - stop_gradient(W_0)``
    re-added to W_0: same values, an extra identity path from an incoming state to W_0's gradient.
    ``"exact"`` carries the state as is (the exact gradient).

    Call: ``x: (B, T, D)``, optional incoming state (B, H, ...) -> ``(out (B, T, D), final_state)``;
    ``update=False`` as in :class:`SRWM`.
    """

    def __init__(self, num_features: int, num_heads: int, *, dropout_rate: float = 0.1, residual: Residual = "paper",
                 layer_norm_eps: float = 1e-5, options: SRWMOptions = SRWMOptions(), dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("SRWMLayer", **module_arguments(locals()))
        self.residual = residual
        self.srwm = SRWM(num_features, num_heads, options=options, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.out_proj = nnx.Linear(num_features, num_features, use_bias=False, dtype=dtype, param_dtype=param_dtype,
                                   rngs=rngs)
        self.norm = nnx.LayerNorm(num_features, epsilon=layer_norm_eps, dtype=dtype, param_dtype=param_dtype,
                                  rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True):
        core_in = x if self.residual == "paper" else self.norm(x)
        y, final = self.srwm(core_in, state, update=update)
        change = self.dropout(self.out_proj(y))
        skip = self.norm(x) if self.residual == "paper" else x
        return skip + change, final


class FeedForward(nnx.Module):
    """Pre-LN feed-forward: ``x + Dropout(Linear2(Dropout(ReLU(Linear1(LayerNorm(x))))))``, D -> hidden -> D."""

    def __init__(self, num_features: int, hidden_features: int | None = None, *, dropout_rate: float = 0.1,
                 layer_norm_eps: float = 1e-5, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("FeedForward", **module_arguments(locals()))
        self.num_features = num_features
        hidden_features = 2 * num_features if hidden_features is None else hidden_features
        self.norm = nnx.LayerNorm(num_features, epsilon=layer_norm_eps, dtype=dtype, param_dtype=param_dtype,
                                  rngs=rngs)
        self.linear1 = nnx.Linear(num_features, hidden_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.linear2 = nnx.Linear(hidden_features, num_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        check_features("FeedForward", x.shape, self.num_features)
        h = self.dropout(jax.nn.relu(self.linear1(self.norm(x))))
        return x + self.dropout(self.linear2(h))


class SRWMBlock(nnx.Module):
    """An :class:`SRWMLayer` followed by a :class:`FeedForward`; ``(x, state, update=True) -> (out, final_state)``.
    Arguments as :class:`SRWMLayer`'s, plus ``hidden_features`` (default 2 D) of the feed-forward."""

    def __init__(self, num_features: int, num_heads: int, *, hidden_features: int | None = None,
                 dropout_rate: float = 0.1, residual: Residual = "paper", layer_norm_eps: float = 1e-5,
                 options: SRWMOptions = SRWMOptions(), dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("SRWMBlock", **module_arguments(locals()))
        self.srwm_layer = SRWMLayer(num_features, num_heads, dropout_rate=dropout_rate, residual=residual,
                                    layer_norm_eps=layer_norm_eps, options=options, dtype=dtype,
                                    param_dtype=param_dtype, rngs=rngs)
        self.feed_forward = FeedForward(num_features, hidden_features, dropout_rate=dropout_rate,
                                        layer_norm_eps=layer_norm_eps, dtype=dtype, param_dtype=param_dtype,
                                        rngs=rngs)

    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, update: bool = True):
        h, final = self.srwm_layer(x, state, update=update)
        return self.feed_forward(h), final


class SRWMCell(nnx.RNNCellBase):
    """One SRWM step as an RNN cell, so ``nnx.RNN(SRWMCell(...))`` runs the recurrence.

    The carry is the fast-weight state, initialised from the trainable W_0;
    ``x_t: (B, D) -> y_t: (B, D)`` (no projection, no residual). Of ``options``, a step uses W_0's
    initialisation (``n_beta`` and the scales), ``input_softmax`` and ``precision``; ``impl``, ``chunk_size``
    (nnx.RNN does the scan) and ``state_gradient`` (the carry is the state itself) do not apply.
    """

    def __init__(self, num_features: int, num_heads: int, *, options: SRWMOptions = SRWMOptions(), dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("SRWMCell", **module_arguments(locals()))
        self.srwm = SRWM(num_features, num_heads, options=options, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs=None, carry_init=None) -> SRWMState:
        if len(input_shape) != 2:
            raise ValueError(f"SRWMCell takes inputs (B, D) per step, got input_shape {input_shape}")
        check_features("SRWMCell", input_shape, self.srwm.num_heads * self.srwm.head_dim)
        return broadcast_state(self.srwm.initial_state, input_shape[0])

    def __call__(self, carry: SRWMState, inputs: jax.Array):
        check_features("SRWMCell", inputs.shape, self.srwm.num_heads * self.srwm.head_dim)
        batch = inputs.shape[0]
        inputs = inputs if self.srwm.dtype is None else inputs.astype(self.srwm.dtype)
        x_t = inputs.reshape(batch, self.srwm.num_heads, self.srwm.head_dim)
        options = self.srwm.options
        carry, y = srwm_step(carry, x_t, input_softmax=options.input_softmax, precision=options.precision)
        return carry, y.reshape(batch, -1)

    @property
    def num_feature_axes(self) -> int:
        return 1
