"""An obviously correct, slow SRWM: a Python loop over time, each block updated separately.

Follows REFERENCE.md §1 line by line; every faster implementation is tested against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from acljax.srwm.state import BLOCKS, SRWMState
from acljax.srwm.step import PRECISIONS, Precision


def reference_impl(state: SRWMState, x: jax.Array, *, input_softmax: bool = False, precision: Precision = "highest"):
    """state batched (B, H, ...), x: (B, T, H, d) -> (y (B, T, H, d_out), final state)."""
    def _times(v, w):  # row vector times matrix per batch element and head: (B, H, d), (B, H, d, e) -> (B, H, e)
        return jnp.einsum("bhi,bhie->bhe", v, w, precision=PRECISIONS[precision])

    weights = dict(state._asdict())
    x = x.astype(state.w_y.dtype)
    outputs = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        if input_softmax:
            x_t = jax.nn.softmax(x_t, axis=-1)
        y_t = _times(x_t, weights["w_y"])
        q_t = jax.nn.softmax(_times(x_t, weights["w_q"]), axis=-1)
        k_t = jax.nn.softmax(_times(x_t, weights["w_k"]), axis=-1)
        b_t = jax.nn.sigmoid(_times(x_t, weights["w_b"]))  # (B, H, n_beta)
        old = dict(weights)  # every block reads the weights from before this step
        for i, name in enumerate(BLOCKS):
            rate = b_t[..., i] if state.n_beta == 4 else b_t[..., 0]
            v = _times(q_t, old[name])
            v_bar = _times(k_t, old[name])
            update = rate[..., None] * (v - v_bar)
            weights[name] = old[name] + jnp.einsum("bhi,bhe->bhie", k_t, update, precision=PRECISIONS[precision])
        outputs.append(y_t)
    return jnp.stack(outputs, axis=1), SRWMState(**weights)
