"""The base of parameter-isolation methods: parameters per task, picked by the task index, and what earlier
tasks trained frozen. Freezing is a zero gradient (``jax.lax.stop_gradient`` or an unused slice) plus a
fresh optimiser state at every task end, so frozen parameters get exactly zero updates (Adam's moments
included)."""

from __future__ import annotations

import dataclasses

import jax

from acljax.cl.methods.base import Method, TaskEnd, require_positive_ints


@dataclasses.dataclass(frozen=True)
class PerTaskParameters(Method):
    """max_tasks: how many tasks' parameters are kept (the longest stream the method can learn)."""

    max_tasks: int = 10

    def __post_init__(self):
        require_positive_ints(self, "max_tasks")

    @property
    def uses_task_id(self) -> bool:
        return True

    def end_task(self, end: TaskEnd):
        if end.index >= self.max_tasks:
            raise ValueError(f"{type(self).__name__} keeps parameters for max_tasks={self.max_tasks} tasks and task "
                             f"{end.index} is number {end.index + 1}: raise {type(self).__name__}.max_tasks "
                             "(--set method.max_tasks=N)")
        return jax.vmap(end.tx.init)(end.params), end.memory
