"""Checks shared by the configs: numbers that would train silently into NaN are refused up front."""

from __future__ import annotations

import math

SEED_LIMIT = 2 ** 63  # seeds are 0 .. 2**63 - 1: jax.random.key takes a signed 64-bit seed, numpy any int >= 0


def require_positive_finite(owner: str, **values: float) -> None:
    """Each value must be a real number > 0 and finite; the error names ``owner.name`` and what arrived."""
    for name, value in values.items():
        if not is_finite_number(value) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


def require_finite(owner: str, **values: float) -> None:
    """Each value must be a finite real number (NaN and inf refused)."""
    for name, value in values.items():
        if not is_finite_number(value):
            raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


def is_finite_number(value) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_int(value) -> bool:
    """A Python int >= 1 (bools, NumPy integers and floats such as 2.0 are not: shapes are built from it)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


POSITIVE_INT = (is_positive_int, "a positive int")
OPTIONAL_POSITIVE_INT = (lambda v: v is None or is_positive_int(v), "a positive int or None")
FINITE_NUMBER = (is_finite_number, "a finite number")


def one_of(options) -> tuple:
    """``(accepts, what is accepted)`` for a string among ``options``."""
    return lambda v: isinstance(v, str) and v in options, f"one of {tuple(options)}"


def check_arguments(owner: str, checks: dict, arguments: dict) -> None:
    """Raise one ValueError naming ``owner.argument``, what arrived and what is accepted, for the first of
    ``arguments`` that ``checks`` (argument -> ``(accepts(value), what is accepted)``) refuses."""
    for name, value in arguments.items():
        accepts, accepted = checks[name]
        if not accepts(value):
            raise ValueError(f"{owner}.{name} must be {accepted}, got {value!r}")


class NonFiniteLoss(ValueError):
    """Training produced a NaN or infinite loss (or gradient); the message says where and what to check."""

    def __init__(self, where: str):
        super().__init__(f"the loss (or its gradient) became NaN or infinite at {where}: the run stops there "
                         "(its last checkpoint is intact). Check the learning rate, the loss weights and the data's "
                         "normalisation")
