"""Joint training: every task seen so far at once, the usual upper bound (not a continual learner)."""

from __future__ import annotations

import dataclasses

from acljax.cl.methods.base import Method


@dataclasses.dataclass(frozen=True)
class Joint(Method):
    def training_tasks(self, seen: list) -> list:
        return list(seen)
