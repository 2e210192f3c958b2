"""Bottleneck adapters (Houlsby et al. 2019) per task on an MLP frozen after task 0.

Task 0 trains the whole MLP. From task 1 on its hidden layers are frozen and task t trains its own adapter
after every hidden layer, ``h <- h + U_t relu(D_t h)`` (D_t: width -> ``bottleneck``, U_t back, U_t starting
at 0 so a new adapter starts as the identity), and the output layer, of which a task-incremental task only
reads its own outputs (the other tasks' columns get no gradient). So what task t learned never changes
afterwards (task-IL: BWT is exactly 0). The optimiser state is reset at each task end, so frozen parameters
get exactly zero updates.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from acljax.cl.methods.base import require_positive_ints
from acljax.cl.methods.isolation import PerTaskParameters
from acljax.cl.models import Model


@dataclasses.dataclass(frozen=True)
class Adapters(PerTaskParameters):
    """bottleneck: the adapters' inner width; max_tasks: adapters kept. Needs an MLP model."""

    bottleneck: int = 16

    def __post_init__(self):
        require_positive_ints(self, "bottleneck", "max_tasks")

    @staticmethod
    def _hidden(model: Model) -> tuple[int, ...]:
        if model.layer_sizes is None:
            raise ValueError("Adapters sit between an MLP's layers: they need an MLP model (SequentialConfig.model="
                             "'mlp'), not a custom or conv model")
        return model.layer_sizes[1:-1]

    def init_params(self, model: Model, key, input_shape, num_outputs):
        """{"base": the MLP's params, "down": per hidden layer (T, width, bottleneck) ~ N(0, 1/width),
        "up": (T, bottleneck, width) zeros}."""
        base_key, *keys = jax.random.split(key, len(self._hidden(model)) + 1)
        return {"base": model.init(base_key),
                "down": [jax.random.normal(k, (self.max_tasks, w, self.bottleneck)) / math.sqrt(w)
                         for k, w in zip(keys, self._hidden(model))],
                "up": [jnp.zeros((self.max_tasks, self.bottleneck, w)) for w in self._hidden(model)]}

    def apply(self, model, params, memory, x, task, training):
        adapted = task > 0
        h = x.reshape(len(x), -1)
        *hidden, head = params["base"]
        for layer, down, up in zip(hidden, params["down"], params["up"]):
            layer = jax.tree.map(lambda p: jnp.where(adapted, jax.lax.stop_gradient(p), p), layer)
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
            h = h + jnp.where(adapted, jax.nn.relu(h @ down[task]) @ up[task], 0.0)
        return h @ head["w"] + head["b"]

    def added_parameters(self, model: Model, task: int) -> int:
        return 0 if task == 0 else sum(2 * w * self.bottleneck for w in self._hidden(model))
