"""Task tokens: one learned vector per task that conditions a shared self-referential sequence model.

The network reads an image as a sequence: the task's token, then each row of pixels (embedded by a linear
layer), through an :class:`acljax.nn.SRWMBlock`, whose fast weights rewrite themselves from the token
onwards; the last position's features give the logits. Task 0 trains the network with token 0; from task 1
on the network is frozen and task t learns its token and the output layer (of which a task-incremental task
only reads its own outputs), so what task t learned never changes afterwards (task-IL: BWT is exactly 0).
The optimiser state is reset at each task end, so frozen parameters get exactly zero updates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from acljax.cl.methods.base import require_positive_ints
from acljax.cl.methods.isolation import PerTaskParameters
from acljax.cl.models import Model, nnx_functions
from acljax.nn import SRWMBlock


class TokenSequenceNet(nnx.Module):
    """``(x (B, H, W, C), token (D,)) -> logits (B, K)``: rows embedded to D features, the token first, an
    SRWM block (``heads`` heads), a linear layer on the last position."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, *, features: int, heads: int, rngs: nnx.Rngs):
        height, width, channels = input_shape
        self.embed = nnx.Linear(width * channels, features, rngs=rngs)
        self.block = SRWMBlock(features, heads, dropout_rate=0.0, rngs=rngs)
        self.head = nnx.Linear(features, num_outputs, rngs=rngs)

    def __call__(self, x: jax.Array, token: jax.Array) -> jax.Array:
        rows = self.embed(x.reshape(x.shape[0], x.shape[1], -1))
        sequence = jnp.concatenate([jnp.broadcast_to(token, (x.shape[0], 1, token.shape[-1])), rows], axis=1)
        h, _ = self.block(sequence)
        return self.head(h[:, -1])


@dataclasses.dataclass(frozen=True)
class TaskTokens(PerTaskParameters):
    """features: the sequence model's width (and each token's size); heads: its SRWM heads (features must
    be a multiple); max_tasks: tokens kept. The method brings its own network (the learner's model is
    not used)."""

    features: int = 64
    heads: int = 4

    def __post_init__(self):
        require_positive_ints(self, "features", "heads", "max_tasks")
        if self.features % self.heads:
            raise ValueError(f"TaskTokens.features ({self.features}) must be a multiple of TaskTokens.heads "
                             f"({self.heads})")

    @functools.lru_cache(maxsize=8)  # noqa: B019 (a frozen dataclass: hashable, and few per process)
    def network(self, input_shape, num_outputs):
        """(init, call) of the :class:`acljax.cl.methods.task_tokens.TokenSequenceNet` for these shapes."""
        if len(input_shape) != 3:
            raise ValueError(f"TaskTokens reads images (H, W, C) row by row, got input_shape {tuple(input_shape)}")
        return nnx_functions(lambda rngs: TokenSequenceNet(input_shape, num_outputs, features=self.features,
                                                           heads=self.heads, rngs=rngs))

    def init_params(self, model: Model, key, input_shape, num_outputs):
        net_key, token_key = jax.random.split(key)
        init, _ = self.network(tuple(input_shape), num_outputs)
        return {"net": init(net_key), "tokens": 0.02 * jax.random.normal(token_key, (self.max_tasks, self.features))}

    def apply(self, model, params, memory, x, task, training):
        _, call = self.network(x.shape[1:], params["net"]["head"]["bias"].shape[-1])
        adapted = task > 0
        net = {name: jax.tree.map(lambda p: jnp.where(adapted, jax.lax.stop_gradient(p), p), part)
               if name != "head" else part for name, part in params["net"].items()}
        return call(net, x, params["tokens"][task])

    def added_parameters(self, model: Model, task: int) -> int:
        return 0 if task == 0 else self.features
