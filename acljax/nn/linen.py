"""Thin Flax Linen wrappers over the same functional core, for Linen users.

Parameter names and shapes match the NNX modules: ``SRWM`` holds ``w_y, w_q, w_k, w_b``;
``SRWMLayer`` holds ``srwm``, ``out_proj`` (Dense, no bias) and ``norm`` (LayerNorm).
"""

from __future__ import annotations

import jax
from flax import linen as nn

from acljax.srwm import SRWMState, init_state, srwm_scan, validate_state
from acljax.srwm.state import continue_from


class SRWM(nn.Module):
    """Bare SRWM: ``x: (B, T, D)`` -> ``(y (B, T, D), final_state)``; W_0 initialised as the paper."""

    num_heads: int
    n_beta: int = 4
    init_scale: float = 1.0
    q_init_scale: float = 0.01
    beta_init: float = 0.0
    impl: str = "scan"
    input_softmax: bool = False
    state_gradient: str = "exact"

    @nn.compact
    def __call__(self, x: jax.Array, state: SRWMState | None = None):
        if x.ndim != 3 or x.shape[-1] % self.num_heads:
            raise ValueError(f"x must be (B, T, D) with D a multiple of num_heads={self.num_heads}, got {x.shape}")
        batch, steps, features = x.shape
        head_dim = features // self.num_heads

        def block_init(name):
            return lambda key: getattr(init_state(key, self.num_heads, head_dim, n_beta=self.n_beta,
                                                  init_scale=self.init_scale, q_init_scale=self.q_init_scale,
                                                  beta_init=self.beta_init), name)

        w0 = SRWMState(*(self.param(name, block_init(name)) for name in SRWMState._fields))
        if state is not None:
            validate_state(state, num_heads=self.num_heads, head_dim=head_dim)
            state = continue_from(state, w0, self.state_gradient)
        y, final = srwm_scan(w0 if state is None else state, x.reshape(batch, steps, self.num_heads, head_dim),
                             impl=self.impl, input_softmax=self.input_softmax)
        return y.reshape(batch, steps, features), final


class SRWMLayer(nn.Module):
    """Linen twin of :class:`acljax.nn.SRWMLayer` (same residual forms, same carried-state options)."""

    num_heads: int
    dropout_rate: float = 0.1
    residual: str = "paper"
    state_gradient: str = "exact"
    layer_norm_eps: float = 1e-5
    n_beta: int = 4
    impl: str = "scan"

    @nn.compact
    def __call__(self, x: jax.Array, state: SRWMState | None = None, *, deterministic: bool = True):
        if self.residual not in ("paper", "pre_ln"):
            raise ValueError(f"residual must be one of ('paper', 'pre_ln'), got {self.residual!r}")
        srwm = SRWM(self.num_heads, n_beta=self.n_beta, impl=self.impl, state_gradient=self.state_gradient,
                    name="srwm")
        norm = nn.LayerNorm(epsilon=self.layer_norm_eps, name="norm")
        core_in = x if self.residual == "paper" else norm(x)
        y, final = srwm(core_in, state)
        update = nn.Dense(x.shape[-1], use_bias=False, name="out_proj")(y.astype(x.dtype))
        update = nn.Dropout(self.dropout_rate)(update, deterministic=deterministic)
        skip = norm(x) if self.residual == "paper" else x
        return skip + update, final


__all__ = ["SRWM", "SRWMLayer"]
