"""The ACL meta-objective (Irie, Csordás, Schmidhuber, "Metalearning Continual Learning Algorithms", TMLR 2025)
over a sequence of tasks read in context. For two tasks, with W_A the state after A's demos and W_AB after A's
then B's, L = -[log p(y_A | x_A; W_A) + log p(y_B | x_B; W_AB) + log p(y_A | x_A; W_AB)]; the last (an earlier
task's queries scored after a later task) is the ACL term.

A sequence is laid out as :func:`acljax.data.episodes.segments` says (per task
``[first-shot demos] [demos] [queries]``), the layout :func:`acljax.data.episodes.sample_episodes` fills.
Demos update the fast weights; queries never do. With W_i the state after task i's demos, the terms are

- ``within_j``: task j's queries scored with W_j (T terms);
- ``backward_j_after_i``: task j's queries scored with W_i, i > j (T(T-1)/2 terms, the ACL terms);
- ``first_shot_j`` (tasks with ``first_shot``): task j's queries after every earlier task and task j's N
  first-shot demos (one per class), before its own demos.

All queries scored against one state are read in one batched pass (``update=False``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from acljax.data.episodes import TaskSpec, segments


def task_letter(index: int) -> str:
    """0 -> "A", 1 -> "B", ..., 25 -> "Z", 26 -> "T27"."""
    return chr(ord("A") + index) if index < 26 else f"T{index + 1}"


def tasks_read(last: int) -> str:
    """The tasks a state has read: 0 -> "A", 1 -> "A, B", 2 -> "A, B, C", 4 -> "A-E"."""
    if last < 3:
        return ", ".join(task_letter(i) for i in range(last + 1))
    return f"{task_letter(0)}-{task_letter(last)}"


class Term(NamedTuple):
    """One term of the objective: ``query_task``'s queries scored with the state after ``after_task``'s demos
    (after its first shots only for ``kind="first_shot"``). ``name`` keys the metrics ("loss/<name>");
    ``label`` is how tables and progress bars show it."""

    kind: str  # "first_shot", "within" or "backward"
    query_task: int
    after_task: int

    @property
    def name(self) -> str:
        """Names the term in metrics and configs (``within_j``, ``backward_j_after_i`` or ``first_shot_j``)."""
        if self.kind == "backward":
            return f"backward_{self.query_task}_after_{self.after_task}"
        return f"{self.kind}_{self.query_task}"

    @property
    def label(self) -> str:
        """Names the term as tables do, "<queries> after <tasks read>" (within_0 "A after A", within_1 "B after A,
        B", backward_0_after_1 "A after A, B" (the ACL term), first_shot_1 "B after 1 shot")."""
        if self.kind == "first_shot":
            return f"{task_letter(self.query_task)} after 1 shot"
        return f"{task_letter(self.query_task)} after {tasks_read(self.after_task)}"

    @classmethod
    def from_name(cls, name: str) -> Term | None:
        """The term a metric name (as in metrics.jsonl and results files) names; None for other names."""
        parts = name.split("_")
        if parts[0] == "within" and len(parts) == 2 and parts[1].isdigit():
            return cls("within", int(parts[1]), int(parts[1]))
        if parts[0] == "backward" and len(parts) == 4 and parts[2] == "after" and parts[1].isdigit() \
                and parts[3].isdigit():
            return cls("backward", int(parts[1]), int(parts[3]))
        if parts[:2] == ["first", "shot"] and len(parts) == 3 and parts[2].isdigit():
            return cls("first_shot", int(parts[2]), int(parts[2]))
        return None


def term_label(name: str) -> str:
    """The label of the term a metric name names (see :attr:`Term.label`); other names are returned unchanged."""
    term = Term.from_name(name)
    return name if term is None else term.label


def _query_scores(logits: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """logits (B, n, N), target (B, n) -> cross-entropy and correctness (1.0 or 0.0), each (B, n)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, target)
    return ce, (jnp.argmax(logits, -1) == target).astype(jnp.float32)


def acl_terms(tasks: list[TaskSpec]) -> list[Term]:
    """Every term in the order the objective computes them: per task i, its first-shot term, its
    within-task term, then the backward terms of the earlier tasks after i."""
    terms = []
    for i, t in enumerate(tasks):
        if t.first_shot:
            terms.append(Term("first_shot", i, i))
        terms.append(Term("within", i, i))
        terms.extend(Term("backward", j, i) for j in range(i))
    return terms


# Up to this many tasks the objective loops by default: its program grows with the tasks (the MLP model's step
# compiles in 2-2.5x the time at 8 tasks as at 2) but its step is faster at 8 tasks; past it the scan, whose
# compile time does not grow with the tasks (0.96-1.6x the 2-task one up to 64 tasks; benchmarks/README.md,
# "The ACL step against the number of tasks").
LOOP_UP_TO_TASKS = 8


@dataclasses.dataclass(frozen=True)
class ACLObjective:
    """Weighted sum of the terms' mean query cross-entropies.

    Weights: ``loss_scale * task_scales[j]`` for task j's within and first-shot terms,
    ``loss_scale`` for backward terms when ``use_acl`` (0 otherwise: the "no ACL" baseline; the
    backward terms are still computed and reported, which shows in-context forgetting).
    ``loss_scale=None`` means one over the number of weighted terms (a uniform mean when every task
    scale is 1). The paper's 2-task loss is ``loss_scale=0.2, task_scales=(0.1, 1)`` (Omniglot first).
    """

    tasks: tuple[TaskSpec, ...]
    use_acl: bool = True
    loss_scale: float | None = None
    scan_tasks: bool | None = None  # None: scan over more than LOOP_UP_TO_TASKS tasks of one layout (see scanned)

    def __post_init__(self):
        if not self.tasks:
            raise ValueError(f"ACLObjective.tasks must hold at least one TaskSpec, got {self.tasks!r}")
        if self.loss_scale is not None and not self.loss_scale > 0:
            raise ValueError(f"ACLObjective.loss_scale must be > 0 or None, got {self.loss_scale!r}")
        if self.scan_tasks and not self.one_layout:
            layouts = [(t.n_way, t.k_shot, t.num_queries, t.first_shot) for t in self.tasks]
            raise ValueError("ACLObjective.scan_tasks=True needs tasks of one layout (n_way, k_shot, num_queries, "
                             f"first_shot), got {layouts}")

    @property
    def one_layout(self) -> bool:
        """Every task has the first task's positions (what a scan over the tasks needs)."""
        return len({(t.n_way, t.k_shot, t.num_queries, t.first_shot) for t in self.tasks}) == 1

    @property
    def scanned(self) -> bool:
        """Whether :meth:`term_losses` scans over the tasks: ``scan_tasks``, or when None, more than
        ``LOOP_UP_TO_TASKS`` (8) tasks of one layout."""
        if self.scan_tasks is not None:
            return self.scan_tasks
        return self.one_layout and len(self.tasks) > LOOP_UP_TO_TASKS

    @property
    def terms(self) -> list[Term]:
        return acl_terms(list(self.tasks))

    @property
    def num_trained_terms(self) -> int:
        return sum(t.kind != "backward" or self.use_acl for t in self.terms)

    def weights(self, task_scales) -> jax.Array:
        """task_scales (T,) in sequence order -> (num_terms,) weights."""
        task_scales = jnp.asarray(task_scales, jnp.float32)
        if task_scales.shape != (len(self.tasks),):
            raise ValueError(f"task_scales must have shape ({len(self.tasks)},) (one per task), "
                             f"got {task_scales.shape}")
        scale = 1.0 / self.num_trained_terms if self.loss_scale is None else self.loss_scale
        backward = np.array([t.kind == "backward" for t in self.terms])
        query_task = np.array([t.query_task for t in self.terms])
        return scale * jnp.where(backward, float(self.use_acl), task_scales[query_task])

    def term_losses(self, model, images, feedback, target):
        """Per-term mean query cross-entropy and accuracy, each (num_terms,), in the order of ``terms``.

        model: an :class:`acljax.nn.InContextLearner`; images (B, L, H, W, C), feedback and target (B, L).
        When :attr:`scanned`, a ``lax.scan`` over the tasks (one layout), so the compiled program does not grow
        with their number; each step reads every task's queries against the new state and keeps the ones
        already read (the others are masked out: twice the query reads of a loop). Otherwise a Python loop over
        the tasks reads exactly the queries each state scores.
        """
        expected = sum(t.length for t in self.tasks)
        if images.shape[1] != expected:
            raise ValueError(f"the sequence must have {expected} positions for these tasks, got images {images.shape}")
        tokens = model.embed(images, feedback)
        return (self._scanned if self.scanned else self._looped)(model, tokens, target)

    def _looped(self, model, tokens, target):
        segs = segments(list(self.tasks))
        losses, accuracies = [], []

        def score(states, query_tasks):
            """One pass reads the queries of every task in ``query_tasks`` against ``states``."""
            idx = np.concatenate([np.arange(segs[j].queries.start, segs[j].queries.stop) for j in query_tasks])
            logits, _ = model.sequence(tokens[:, idx], states, update=False)
            ce, correct = _query_scores(logits, target[:, idx])
            bounds = np.cumsum([0] + [self.tasks[j].num_queries for j in query_tasks])
            for a, b in zip(bounds[:-1], bounds[1:]):
                losses.append(ce[:, a:b].mean())
                accuracies.append(correct[:, a:b].mean())

        states = None
        for i, seg in enumerate(segs):
            if seg.shots is not None:
                _, states = model.sequence(tokens[:, seg.shots], states)
                score(states, [i])
            _, states = model.sequence(tokens[:, seg.demos], states)
            score(states, [i, *range(i)])  # the order of acl_terms: within, then backward
        return jnp.stack(losses), jnp.stack(accuracies)

    def _scanned(self, model, tokens, target):
        num_tasks, (batch, length, features) = len(self.tasks), tokens.shape
        seg = segments(self.tasks[:1])[0]  # every task's positions, relative to its start
        tokens = tokens.reshape(batch, num_tasks, length // num_tasks, features).swapaxes(0, 1)  # (T, B, Lt, F)
        target = target.reshape(batch, num_tasks, -1).swapaxes(0, 1)  # (T, B, Lt)
        queries = tokens[:, :, seg.queries].swapaxes(0, 1).reshape(batch, -1, features)  # (B, T Q, F)
        query_target = target[:, :, seg.queries].swapaxes(0, 1).reshape(batch, -1)  # (B, T Q)
        graphdef, rng_state, rest = nnx.split(model, nnx.RngState, ...)  # dropout's key count goes in the carry

        def read_task(carry, task):
            """One task: its first shots (scored on its queries), its demos, then every task's queries ->
            (first-shot loss, accuracy), and (T,) losses and accuracies per query task."""
            rng_state, states = carry
            task_tokens, task_target = task
            model = nnx.merge(graphdef, rng_state, rest)
            first = (jnp.zeros(()), jnp.zeros(()))
            if seg.shots is not None:
                _, shot_states = model.sequence(task_tokens[:, seg.shots], states)
                logits, _ = model.sequence(task_tokens[:, seg.queries], shot_states, update=False)
                first = tuple(score.mean() for score in _query_scores(logits, task_target[:, seg.queries]))
                states = shot_states
            _, states = model.sequence(task_tokens[:, seg.demos], states)
            logits, _ = model.sequence(queries, states, update=False)
            per_task = (score.reshape(batch, num_tasks, -1).mean((0, 2))
                        for score in _query_scores(logits, query_target))
            return (nnx.split(model, nnx.RngState, ...)[1], states), (*first, *per_task)

        # task 0 starts from W_0 (no incoming state, as in the loop: a carried copy of W_0 would change the
        # gradient of state_gradient="official"); tasks 1.. continue in the scan
        carry, first = read_task((rng_state, None), (tokens[0], target[0]))
        _, rest_of_them = jax.lax.scan(read_task, carry, (tokens[1:], target[1:]))
        shot_loss, shot_acc, losses, accuracies = (jnp.concatenate([a[None], b]) for a, b in zip(first, rest_of_them))
        # (T, T + 1): row i the state after task i, column j task j's queries, column T task i's first shots
        after = np.array([t.after_task for t in self.terms])
        column = np.array([num_tasks if t.kind == "first_shot" else t.query_task for t in self.terms])
        return (jnp.concatenate([losses, shot_loss[:, None]], 1)[after, column],
                jnp.concatenate([accuracies, shot_acc[:, None]], 1)[after, column])

    def __call__(self, model, images, feedback, target, task_scales):
        """-> (loss, (term losses, term accuracies))."""
        losses, accuracies = self.term_losses(model, images, feedback, target)
        return jnp.dot(self.weights(task_scales), losses), (losses, accuracies)
