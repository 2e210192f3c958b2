"""The compiled meta-training and evaluation steps, built per objective as closures over the model's graph.

:func:`make_train_step` returns one jit-compiled function that takes an Adam step on the ACL objective, discards
a step whose loss or gradient is not finite (parameters and optimiser state keep their values), and adds the
step's metrics to a :class:`Tally` that stays on the device: the loop fetches it once per log line, so it never
waits for the device in between. Parameters, optimiser state and tally are donated to their updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from acljax.acl.objective import ACLObjective


class Tally(NamedTuple):
    """The steps since the last log line, summed on the device. A step is non-finite when its loss or a gradient
    entry is NaN or infinite. ``failed_at`` is the first non-finite step that came after ``skip_limit`` skipped
    ones in a row (0: none); from then on every update is discarded."""

    loss: jax.Array  # () sum of the finite steps' losses
    term_losses: jax.Array  # (num_terms,) sums over the finite steps
    term_accuracies: jax.Array  # (num_terms,)
    finite_steps: jax.Array  # () int32
    skipped_steps: jax.Array  # () int32: non-finite steps discarded
    skipped_in_a_row: jax.Array  # () int32: carried from one log line to the next
    failed_at: jax.Array  # () int32

    def restarted(self) -> Tally:
        """A tally for the next log line: sums at zero, the run of skipped steps and a failure kept."""
        return empty_tally(self.term_losses.shape[0])._replace(skipped_in_a_row=self.skipped_in_a_row,
                                                                 failed_at=self.failed_at)


def empty_tally(num_terms: int) -> Tally:
    """Every field its own buffer (the step donates them)."""
    counts = (jnp.zeros((), jnp.int32) for _ in range(4))
    return Tally(jnp.zeros((), jnp.float32), jnp.zeros(num_terms, jnp.float32), jnp.zeros(num_terms, jnp.float32),
                 *counts)


def merged_model(graphdef: nnx.GraphDef, params, rest, *, train: bool, key: jax.Array | None = None) -> nnx.Module:
    """The model from its parts, with dropout drawn from ``key`` (``train``) or off. The modules' dropout draws
    from the ``default`` stream of the model's ``nnx.Rngs`` (``reseed(dropout=...)`` would change nothing)."""
    model = nnx.merge(graphdef, params, rest, copy=True)
    if train:
        nnx.reseed(model, default=key)
    else:
        model.eval()
    return model


def _all_finite(tree) -> jax.Array:
    return jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)]).all()


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, objective: ACLObjective, *,
                    donate: bool = True) -> Callable:
    """-> ``step(params, opt_state, rest, tally, batch, scales, key, step_number, skip_limit) -> (params,
    opt_state, tally)``, jit-compiled, donating params, opt_state and tally (unless ``donate=False``, for
    benchmarks that call it again on the same arguments). ``batch``: (images (B, L, H, W, C),
    feedback (B, L), target (B, L)); ``scales`` (T,) the tasks' loss scales; ``step_number`` (int32, counted
    from 1) names a failure; ``skip_limit`` (int32): non-finite steps in a row to discard before failing."""

    def train_step(params, opt_state, rest, tally: Tally, batch, scales, key, step_number, skip_limit):
        def loss_fn(params):
            return objective(merged_model(graphdef, params, rest, train=True, key=key), *batch, scales)

        (loss, (losses, accuracies)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        finite = jnp.isfinite(loss) & _all_finite(grads) & (tally.failed_at == 0)
        in_a_row = jnp.where(finite, 0, tally.skipped_in_a_row + 1)
        fails = ~finite & (tally.failed_at == 0) & (in_a_row > skip_limit)

        def kept(new, old):
            return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)

        def added(total, value):
            return total + jnp.where(finite, value, 0)

        tally = Tally(added(tally.loss, loss), added(tally.term_losses, losses),
                      added(tally.term_accuracies, accuracies), tally.finite_steps + finite,
                      tally.skipped_steps + (~finite & (tally.failed_at == 0) & ~fails), in_a_row,
                      jnp.where(fails, step_number, tally.failed_at))
        return kept(optax.apply_updates(params, updates), params), kept(new_opt_state, opt_state), tally

    return jax.jit(train_step, donate_argnums=(0, 1, 3) if donate else ())


def make_eval_step(graphdef: nnx.GraphDef, objective: ACLObjective) -> Callable:
    """-> ``evaluate(params, rest, batch, scales) -> (loss, (term losses, term accuracies))``, jit-compiled,
    dropout off."""

    def eval_step(params, rest, batch, scales):
        return objective(merged_model(graphdef, params, rest, train=False), *batch, scales)

    return jax.jit(eval_step)
