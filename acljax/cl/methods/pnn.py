"""Progressive neural networks (Rusu et al. 2016): a new MLP column per task, with lateral connections
from every earlier column's hidden activations; earlier columns are frozen.

Column k, layer l: ``h_k^l = relu(W_k^l h_k^{l-1} + b_k^l + sum_{j<k} U_{kj}^l h_j^{l-1})`` (linear laterals
into every layer after the first; the output layer is linear). Task t is answered by column t, so what
task t learned never changes afterwards (task-IL: BWT is exactly 0). Columns are preallocated for
``max_tasks`` tasks and all run in one batched product (unused ones are masked out), so nothing recompiles;
the optimiser state is reset at each task end, so frozen columns get exactly zero updates.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from acljax.cl.methods.isolation import PerTaskParameters
from acljax.cl.models import Model, init_mlp


def _freeze_before(params, task):
    """Leaves stacked over columns (T, ...): those of columns k < task pass no gradient."""
    def freeze(p):
        frozen = (jnp.arange(p.shape[0]) < task).reshape(-1, *[1] * (p.ndim - 1))
        return jnp.where(frozen, jax.lax.stop_gradient(p), p)

    return jax.tree.map(freeze, params)


@dataclasses.dataclass(frozen=True)
class PNN(PerTaskParameters):
    """max_tasks: columns kept. Needs an MLP model (``model="mlp"``; each column has its layer sizes)."""

    @staticmethod
    def _sizes(model: Model) -> tuple[int, ...]:
        if model.layer_sizes is None:
            raise ValueError("PNN builds MLP columns: it needs an MLP model (SequentialConfig.model='mlp'), not a "
                             "custom or conv model")
        return model.layer_sizes

    def init_params(self, model: Model, key, input_shape, num_outputs):
        """{"columns": init_mlp per column, leaves (T, ...); "laterals": per layer l >= 1, U (T, T, s_l, s_l+1)
        with U[k, j] used only for j < k, uniform +-1/sqrt(s_l) like the columns' weights}."""
        sizes = self._sizes(model)
        column_key, lateral_key = jax.random.split(key)
        columns = jax.vmap(lambda k: init_mlp(k, sizes))(jax.random.split(column_key, self.max_tasks))
        keys = jax.random.split(lateral_key, len(sizes) - 2)
        laterals = [jax.random.uniform(k, (self.max_tasks, self.max_tasks, n_in, n_out), minval=-1, maxval=1)
                    / math.sqrt(n_in) for k, n_in, n_out in zip(keys, sizes[1:-1], sizes[2:])]
        return {"columns": columns, "laterals": laterals}

    def apply(self, model, params, memory, x, task, training):
        params = _freeze_before(params, task)
        columns = jnp.arange(self.max_tasks)
        earlier = (columns[None, :] < columns[:, None]).astype(x.dtype)[:, :, None, None]  # [k, j]: j < k
        h = jnp.broadcast_to(x.reshape(len(x), -1), (self.max_tasks, len(x), math.prod(x.shape[1:])))
        layers = params["columns"]
        for i, layer in enumerate(layers):
            pre = jnp.einsum("kbi,kio->kbo", h, layer["w"]) + layer["b"][:, None]
            if i > 0:
                pre = pre + jnp.einsum("jbi,kjio->kbo", h, params["laterals"][i - 1] * earlier)
            h = jax.nn.relu(pre) if i < len(layers) - 1 else pre
        return h[task]

    def added_parameters(self, model: Model, task: int) -> int:
        """Task 0's column is the network itself; task t > 0 adds a column and laterals from t columns."""
        sizes = self._sizes(model)
        column = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))
        laterals = sum(n_in * n_out for n_in, n_out in zip(sizes[1:-1], sizes[2:]))
        return 0 if task == 0 else column + task * laterals
