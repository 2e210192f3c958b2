"""An obviously correct, slow SRWM: a Python loop over time, each block updated separately.

Per head (head width d, row vectors, ``out = x @ W``), one step of input x_t reads the weights W from before
it (Irie et al., "A Modern Self-Referential Weight Matrix That Learns to Modify Itself", ICML 2022)::

    y_t = x_t Wy;  q_t = softmax(x_t Wq);  k_t = softmax(x_t Wk);  b_t = sigmoid(x_t Wb)   (n_beta rates)
    for each block X of (y, q, k, b), with its rate b_t[X] (the one rate when n_beta == 1):
        WX <- WX + k_t^T (b_t[X] (q_t WX - k_t WX))

i.e. WX_t = (I + b_t[X] k_t^T (q_t - k_t)) WX_{t-1}. The update is applied at the last step too, so the final
state has read every step. This loop follows it line by line; every faster implementation is tested against it.
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
