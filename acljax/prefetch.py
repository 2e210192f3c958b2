"""Compute a training loop's inputs ahead of time in a background thread."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def prefetched(make: Callable[[int], T], steps: Iterable[int], depth: int) -> Iterator[tuple[int, T]]:
    """``(step, make(step))`` for each step in order, ``make`` running up to ``depth`` steps ahead in one
    background thread while the caller works (depth 0: inline). ``make`` must depend on its step only (as
    the seeded samplers do), so results and resumes are the same at any depth. An exception in ``make`` is
    raised at its step; stopping early cancels what was not started."""
    if depth == 0:
        yield from ((step, make(step)) for step in steps)
        return
    upcoming = iter(steps)
    pool = ThreadPoolExecutor(1, thread_name_prefix="acljax-prefetch")
    try:
        pending = collections.deque((step, pool.submit(make, step)) for step in itertools.islice(upcoming, depth))
        while pending:
            step, future = pending.popleft()
            result = future.result()
            for following in upcoming:
                pending.append((following, pool.submit(make, following)))
                break
            yield step, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
