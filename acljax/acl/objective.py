"""The ACL meta-objective (Irie, Csordás, Schmidhuber, "Metalearning Continual Learning Algorithms", TMLR 2025)
over a sequence of tasks read in context. For two tasks, with W_A the state after A's demos and W_AB after A's
then B's, L = -[log p(y_A | x_A; W_A) + log p(y_B | x_B; W_AB) + log p(y_A | x_A; W_AB)]; the last (an earlier
task's queries scored after a later task) is the ACL term.

A sequence is laid out as :func:`acljax.data.episodes.segments` says (per task
``[first-shot demos] [demos] [queries]``), the layout :func:`acljax.data.episodes.sample_episodes` fills.
Demos update the fast weights; queries never do. With W_i the state after task i's demos, the terms are

- ``within_j``: task j's queries scored with W_j (T terms);
- ``backward_j_after_i``: task j's queries scored with W_i, i > j (T(T-1)/2 terms, the ACL terms);
- ``first_shot_j`` (tasks with ``first_shot``): task j's queries after its N first-shot demos only.

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
        if self.kind == "backward":
            return f"backward_{self.query_task}_after_{self.after_task}"
        return f"{self.kind}_{self.query_task}"

    @property
    def label(self) -> str:
        """"<queries> after <tasks read>": within_0 "A after A", within_1 "B after A, B", backward_0_after_1
        "A after A, B" (the ACL term), first_shot_1 "B after 1 shot"."""
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


def query_schedule(num_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which queries each step of the scanned objective reads: state i (after task i) reads the queries of
    tasks 0..i, T(T + 1)/2 query sets in all, laid out as equal steps of two states each. For even T, states
    i and T-1-i share a step (T + 1 slots); for odd T, states i and T-2-i do (T slots) and the last state has
    a step to itself.

    -> rows (S, 2): the two states of each step; slot_tasks (S, K): the task whose queries each slot reads;
    first_row_slots (S,): how many slots (the first) read the first state."""
    if num_tasks % 2 == 0:
        pairs = [(i, num_tasks - 1 - i) for i in range(num_tasks // 2)]
    else:
        pairs = [(i, num_tasks - 2 - i) for i in range((num_tasks - 1) // 2)] + [(num_tasks - 1, num_tasks - 1)]
    rows = np.array(pairs, np.int32).reshape(-1, 2)
    first_row_slots = rows[:, 0] + 1
    slot_tasks = np.array([list(range(a + 1)) + (list(range(b + 1)) if a != b else []) for a, b in pairs],
                          np.int32)
    return rows, slot_tasks, first_row_slots.astype(np.int32)


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
    scan_tasks: bool | None = None  # None: scan over the tasks when they share one layout (see term_losses)

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
        """Per-term mean query cross-entropy and accuracy, each (num_terms,), in the order of :attr:`terms`.

        model: an :class:`acljax.nn.InContextLearner`; images (B, L, H, W, C), feedback and target (B, L).
        Tasks of one layout run as two ``lax.scan``\ s (``scan_tasks``), so the compiled program does not grow
        with their number: one over the tasks (first shots, demos) keeps the state after each task, one over
        :func:`query_schedule` reads every state's queries, exactly the query sets a loop reads. Otherwise a
        Python loop over the tasks reads the queries of each state as it goes.
        """
        expected = sum(t.length for t in self.tasks)
        if images.shape[1] != expected:
            raise ValueError(f"the sequence must have {expected} positions for these tasks, got images {images.shape}")
        tokens = model.embed(images, feedback)
        scan = self.one_layout if self.scan_tasks is None else self.scan_tasks
        return (self._scanned if scan else self._looped)(model, tokens, target)

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
        target = jnp.asarray(target).reshape(batch, num_tasks, -1).swapaxes(0, 1)  # (T, B, Lt)
        queries, query_target = tokens[:, :, seg.queries], target[:, :, seg.queries]  # (T, B, Q, F), (T, B, Q)
        graphdef, rng_state, rest = nnx.split(model, nnx.RngState, ...)  # dropout's key count goes in the carries

        def read_task(carry, task):
            """One task: its first shots (scored on its queries), then its demos -> (first-shot loss, accuracy,
            the state after it)."""
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
            return (nnx.split(model, nnx.RngState, ...)[1], states), (*first, states)

        # task 0 starts from W_0 (no incoming state, as in the loop: a carried copy of W_0 would change the
        # gradient of state_gradient="official"); tasks 1.. continue in the scan
        carry, first = read_task((rng_state, None), (tokens[0], target[0]))
        carry, later = jax.lax.scan(read_task, carry, (tokens[1:], target[1:]))
        shot_loss, shot_acc, after = (jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), x, y)
                                      for x, y in zip(first, later))  # after: every state leaf (T, B, ...)

        rows, slot_tasks, first_row_slots = query_schedule(num_tasks)
        slots = slot_tasks.shape[1]

        def read_queries(rng_state, step):
            """The queries of ``slot_tasks`` against two states, the first one's for the first slots ->
            (slots,) losses and accuracies."""
            pair, tasks_read, first_slots = step
            model = nnx.merge(graphdef, rng_state, rest)
            first_state = jnp.arange(slots) < first_slots
            states = jax.tree.map(  # each leaf (2, B, ...) -> (slots B, ...)
                lambda w: jnp.where(first_state.reshape(slots, *[1] * (w.ndim - 1)), w[0], w[1])
                .reshape(slots * batch, *w.shape[2:]), pair)
            logits, _ = model.sequence(queries[tasks_read].reshape(slots * batch, -1, features), states,
                                       update=False)
            scores = _query_scores(logits, query_target[tasks_read].reshape(slots * batch, -1))
            return (nnx.split(model, nnx.RngState, ...)[1],
                    tuple(score.reshape(slots, -1).mean(1) for score in scores))

        pairs = jax.tree.map(lambda w: w[rows], after)  # (S, 2, B, ...)
        _, (losses, accuracies) = jax.lax.scan(read_queries, carry[0], (pairs, slot_tasks, first_row_slots))
        # a term's entry: (step, slot) of the flattened (S * slots) scores, or the first-shot row
        where = {(int(rows[s, int(k >= first_row_slots[s])]), int(slot_tasks[s, k])): s * slots + k
                 for s in range(len(rows)) for k in range(slots)}
        index = np.array([(len(rows) * slots + t.query_task if t.kind == "first_shot"
                           else where[t.after_task, t.query_task]) for t in self.terms])
        return (jnp.concatenate([losses.reshape(-1), shot_loss])[index],
                jnp.concatenate([accuracies.reshape(-1), shot_acc])[index])

    def __call__(self, model, images, feedback, target, task_scales):
        """-> (loss, (term losses, term accuracies))."""
        losses, accuracies = self.term_losses(model, images, feedback, target)
        return jnp.dot(self.weights(task_scales), losses), (losses, accuracies)
