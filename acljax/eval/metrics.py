"""Continual-learning metrics from an accuracy matrix: ACC and BWT/FWT (Lopez-Paz & Ranzato 2017), forgetting
(Chaudhry et al. 2018).

``R[i, j]``: accuracy on task j after learning tasks 0..i (T x T, future tasks included);
``b[j]``: accuracy of the untrained learner on task j. Indices here are 0-based.
"""

from __future__ import annotations

import numpy as np


def _check(R: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    R = np.asarray(R, np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 1:
        raise ValueError(f"R must be a square T x T accuracy matrix, got shape {R.shape}")
    if b is not None and np.shape(b) != (R.shape[0],):
        raise ValueError(f"b must have shape ({R.shape[0]},) (one untrained accuracy per task), got {np.shape(b)}")
    return R


def average_accuracy(R) -> float:
    """ACC = mean_j R[T-1, j]."""
    return float(_check(R)[-1].mean())


def backward_transfer(R) -> float:
    """BWT = mean_{j < T-1} (R[T-1, j] - R[j, j]); NaN for one task."""
    R = _check(R)
    t = R.shape[0]
    return float(np.mean([R[-1, j] - R[j, j] for j in range(t - 1)])) if t > 1 else float("nan")


def forward_transfer(R, b) -> float:
    """FWT = mean_{j >= 1} (R[j-1, j] - b[j]); NaN for one task."""
    R = _check(R, b)
    t = R.shape[0]
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, t)])) if t > 1 else float("nan")


def forgetting(R) -> float:
    """Mean over j < T-1 of f_j = max_{l < T-1} R[l, j] - R[T-1, j]; NaN for one task."""
    R = _check(R)
    t = R.shape[0]
    return float(np.mean([R[:-1, j].max() - R[-1, j] for j in range(t - 1)])) if t > 1 else float("nan")


def summarize(R, b) -> dict[str, float]:
    """ACC, BWT, FWT and forgetting of one accuracy matrix R (T, T) with the untrained baseline b (T,)."""
    return {"ACC": average_accuracy(R), "BWT": backward_transfer(R), "FWT": forward_transfer(R, b),
            "forgetting": forgetting(R)}
