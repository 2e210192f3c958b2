"""Checks shared by the configs: numbers that would train silently into NaN are refused up front."""

from __future__ import annotations

import math


def require_positive_finite(owner: str, **values: float) -> None:
    """Each value must be a real number > 0 and finite; the error names ``owner.name`` and what arrived."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


def require_finite(owner: str, **values: float) -> None:
    """Each value must be a finite real number (NaN and inf refused)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


class NonFiniteLoss(ValueError):
    """Training produced a NaN or infinite loss; the message says where and what to check."""

    def __init__(self, where: str):
        super().__init__(f"the loss became NaN or infinite at {where}: the run stops there (its last checkpoint "
                         "is intact). Check the learning rate, the loss weights and the data's normalisation")
