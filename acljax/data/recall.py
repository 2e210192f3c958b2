"""In-context associative recall: a synthetic task for SRWM sequence models.

Each sequence shows ``num_pairs`` (key, value) demos, then ``num_queries`` keys with the value
hidden (the "unknown" index ``num_values``). A model must answer each query with the value
paired with that key earlier in the same sequence: the mapping is new in every sequence, so
only in-context learning solves it (chance is ``1 / num_values``).
"""

from __future__ import annotations

import numpy as np


def recall_batch(rng: np.random.Generator, batch_size: int, *, num_keys: int = 16, num_values: int = 8,
                 num_pairs: int = 8, num_queries: int = 8):
    """Sample a batch.

    Returns:
      ``(inputs, targets, is_query)``: inputs (B, T, num_keys + num_values + 1) float32 one-hot [key,
      value-or-unknown], T = pairs + queries; targets (B, T) int32, the value to predict (meaningful where
      ``is_query``); is_query (T,) bool.
    """
    if num_pairs > num_keys:
        raise ValueError(f"num_pairs ({num_pairs}) must be <= num_keys ({num_keys}): keys in a sequence are distinct")
    for name, value in (("batch_size", batch_size), ("num_keys", num_keys), ("num_values", num_values),
                        ("num_pairs", num_pairs), ("num_queries", num_queries)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    keys = np.argsort(rng.random((batch_size, num_keys)), axis=1)[:, :num_pairs]
    values = rng.integers(0, num_values, (batch_size, num_pairs))
    asked = rng.integers(0, num_pairs, (batch_size, num_queries))
    rows = np.arange(batch_size)[:, None]
    seq_keys = np.concatenate([keys, keys[rows, asked]], axis=1)
    targets = np.concatenate([values, values[rows, asked]], axis=1).astype(np.int32)
    shown = np.concatenate([values, np.full((batch_size, num_queries), num_values)], axis=1)
    inputs = np.concatenate([np.eye(num_keys, dtype=np.float32)[seq_keys],
                             np.eye(num_values + 1, dtype=np.float32)[shown]], axis=-1)
    is_query = np.arange(num_pairs + num_queries) >= num_pairs
    return inputs, targets, is_query
