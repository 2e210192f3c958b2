"""A ready-made sequence model of stacked SRWM blocks."""

from __future__ import annotations

import jax
from flax import nnx

from acljax.nn.srwm import SRWMBlock
from acljax.srwm import SRWMState


class SRWMNet(nnx.Module):
    """``Linear(in -> D)``, ``num_blocks`` x :class:`SRWMBlock`, ``Linear(D -> out)`` (no final LayerNorm).

    Call: ``x: (B, T, in_features)``, optional per-block states -> ``(logits (B, T, out), states)``;
    ``update=False`` reads every position against the states without changing them (see :class:`SRWM`).
    """

    def __init__(self, in_features: int, out_features: int, *, num_features: int = 256, num_heads: int = 16,
                 num_blocks: int = 2, hidden_features: int | None = None, dropout_rate: float = 0.1,
                 rngs: nnx.Rngs, **srwm_kwargs):
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        self.in_proj = nnx.Linear(in_features, num_features, rngs=rngs)
        self.blocks = nnx.List([
            SRWMBlock(num_features, num_heads, hidden_features=hidden_features, dropout_rate=dropout_rate,
                      rngs=rngs, **srwm_kwargs)
            for _ in range(num_blocks)])
        self.head = nnx.Linear(num_features, out_features, rngs=rngs)

    def __call__(self, x: jax.Array, states: tuple[SRWMState, ...] | None = None, *, update: bool = True):
        if states is not None and len(states) != len(self.blocks):
            raise ValueError(f"states must hold one state per block ({len(self.blocks)}), got {len(states)}")
        h = self.in_proj(x)
        finals = []
        for i, block in enumerate(self.blocks):
            h, final = block(h, None if states is None else states[i], update=update)
            finals.append(final)
        return self.head(h), tuple(finals)
