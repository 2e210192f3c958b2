"""The protocol every continual-learning method implements for :class:`acljax.cl.trainer.SequentialLearner`.

A method is a frozen dataclass holding its hyper-parameters. Per seed (the learner vmaps every hook that
runs inside the training step) it may

- wrap the optimiser (:meth:`Method.optimizer`: a penalty in the optax chain, SI's wrapper),
- keep a **memory** between tasks: a fixed-shape pytree made by :meth:`Method.init_memory` (a replay
  buffer, a teacher model), read by the step, rewritten only at task ends, so nothing recompiles,
- change the training loss (:meth:`Method.loss`) or the gradient (:meth:`Method.adjust_gradients`),
- act at the end of each task (:meth:`Method.end_task`, on the host, every seed at once),
- train on more than the current task (:meth:`Method.training_tasks`),
- own the parameters (:meth:`Method.init_params`, :meth:`Method.apply`: per-task parameters routed by the
  task index, as parameter-isolation methods do).

The base class is plain fine-tuning. A new method is one module with a subclass and an entry in
:data:`acljax.cl.methods.METHODS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from acljax.checks import is_positive_int
from acljax.cl.models import Model

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (params, x (B, *input_shape)) -> logits (B, K)


class Masks(NamedTuple):
    """Output masks of the step. Task-IL streams mask logits to the task's outputs (one head per task)."""

    current: jax.Array  # (K,) bool: the outputs being trained
    of_label: jax.Array  # (K, K) bool: row l, the outputs of the task that owns label l (for stored examples)
    previous: jax.Array  # (K,) bool: the outputs of every earlier task


@dataclasses.dataclass(frozen=True)
class TaskEnd:
    """What :meth:`Method.end_task` sees. Leading axis S (seeds) on params, opt_state, memory and keys."""

    index: int
    seeds: list[int]
    apply: Callable[[Any, Any, jax.Array], jax.Array]  # one seed's (params, memory, x) -> logits, as trained
    params: Any
    opt_state: Any
    memory: Any
    x: np.ndarray  # (N, *input_shape) the task's normalised training inputs
    y: np.ndarray  # (N,) their labels
    mask: jax.Array  # (K,) the outputs trained on this task
    keys: jax.Array  # (S,) one fresh key per seed
    reset_inner: optax.GradientTransformation | None  # the inner optimiser when SequentialConfig.reset_optimizer
    tx: optax.GradientTransformation  # the whole optimiser (Method.optimizer of the inner one)


def require_positive_ints(owner, *names: str) -> None:
    """Each named field of the method ``owner`` must be an int >= 1; the error names ``Class.field``."""
    for name in names:
        if not is_positive_int(getattr(owner, name)):
            raise ValueError(f"{type(owner).__name__}.{name} must be a positive int, got {getattr(owner, name)!r}")


def masked(logits: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask, logits, -1e9)


def cross_entropy(apply: ApplyFn, params, x: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-example cross-entropy (B,) of the logits masked by ``mask`` ((K,) or per example (B, K))."""
    return optax.softmax_cross_entropy_with_integer_labels(masked(apply(params, x), mask), y)


@dataclasses.dataclass(frozen=True)
class Method:
    """Plain fine-tuning; subclasses override the hooks they need."""

    @property
    def uses_task_id(self) -> bool:
        """True if ``apply`` reads the task index at test time: the method is for task-IL streams only."""
        return False

    def for_inputs(self, mean, std) -> Method:
        """This method for inputs normalised as (pixels - mean) / std, pixels in [0, 1] (the learner calls it
        once). A method that models the inputs themselves (generative replay) keeps the two; others need not."""
        return self

    def optimizer(self, inner: optax.GradientTransformation) -> optax.GradientTransformation:
        return inner

    def init_params(self, model: Model, key: jax.Array, input_shape: tuple[int, ...], num_outputs: int):
        """One seed's parameters."""
        return model.init(key)

    def apply(self, model: Model, params, memory, x: jax.Array, task: jax.Array, training: bool) -> jax.Array:
        """One seed's logits (B, K) of ``x (B, *input_shape)`` for task index ``task`` (a traced int: in training
        the task being learned, in testing the task being tested)."""
        return model.apply(params, x)

    def added_parameters(self, model: Model, task: int) -> int:
        """Parameters the method adds for task ``task`` beyond the network it was given (0 for a fixed network)."""
        return 0

    def init_memory(self, params, input_shape: tuple[int, ...], num_outputs: int):
        """One seed's memory, fixed shape for the whole stream; ``()`` when the method keeps none."""
        return ()

    def loss(self, apply: ApplyFn, params, memory, x: jax.Array, y: jax.Array, masks: Masks,
             key: jax.Array) -> jax.Array:
        """One seed's training loss on the minibatch ``x (B, *input_shape)``, y (B,)."""
        return cross_entropy(apply, params, x, y, masks.current).mean()

    def adjust_gradients(self, apply: ApplyFn, params, memory, grads, masks: Masks, key: jax.Array):
        """One seed's gradient, changed before the optimiser sees it (A-GEM's projection)."""
        return grads

    def end_task(self, end: TaskEnd) -> tuple[Any, Any]:
        """End of task ``end.index``, every seed at once -> (opt_state, memory)."""
        return end.opt_state, end.memory

    def samples(self, params, key: jax.Array, n: int, input_shape: tuple[int, ...]) -> jax.Array | None:
        """A generative method's n generated inputs ``(n, *input_shape)`` from one seed's params; None otherwise."""
        return None

    def training_tasks(self, seen: list) -> list:
        """The tasks whose training data the learner trains on now; ``seen[-1]`` is the current one."""
        return seen[-1:]
