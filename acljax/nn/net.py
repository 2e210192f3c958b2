"""A ready-made sequence model of stacked SRWM blocks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acljax.nn.srwm import Residual, SRWMBlock, check_features, check_module_arguments, module_arguments
from acljax.srwm import SRWMOptions, SRWMState


class SRWMNet(nnx.Module):
    """``Linear(in -> D)``, ``num_blocks`` x :class:`SRWMBlock`, ``Linear(D -> out)`` (no final LayerNorm).

    Call: ``x: (B, T, in_features)``, optional per-block states -> ``(logits (B, T, out), states)``;
    ``update=False`` reads every position against the states without changing them (see :class:`SRWM`).
    The block arguments (``options`` among them) are :class:`SRWMBlock`'s.
    """

    def __init__(self, in_features: int, out_features: int, *, num_features: int = 256, num_heads: int = 16,
                 num_blocks: int = 2, hidden_features: int | None = None, dropout_rate: float = 0.1,
                 residual: Residual = "paper", layer_norm_eps: float = 1e-5, options: SRWMOptions = SRWMOptions(),
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        check_module_arguments("SRWMNet", **module_arguments(locals()))
        self.in_features = in_features
        self.in_proj = nnx.Linear(in_features, num_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.blocks = nnx.List([
            SRWMBlock(num_features, num_heads, hidden_features=hidden_features, dropout_rate=dropout_rate,
                      residual=residual, layer_norm_eps=layer_norm_eps, options=options, dtype=dtype,
                      param_dtype=param_dtype, rngs=rngs)
            for _ in range(num_blocks)])
        self.head = nnx.Linear(num_features, out_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, states: tuple[SRWMState, ...] | None = None, *, update: bool = True):
        if states is not None and len(states) != len(self.blocks):
            raise ValueError(f"states must hold one state per block ({len(self.blocks)}), got {len(states)}")
        check_features("SRWMNet", x.shape, self.in_features, "in_features")
        h = self.in_proj(x)
        finals = []
        for i, block in enumerate(self.blocks):
            h, final = block(h, None if states is None else states[i], update=update)
            finals.append(final)
        return self.head(h), tuple(finals)
