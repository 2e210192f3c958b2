"""prefetched: the same (step, value) sequence as a plain loop at any depth, computed ahead in a thread."""

import threading

import pytest

from acljax.prefetch import prefetched


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
@pytest.mark.parametrize("steps", [range(0), range(1), range(3, 11)])
def test_same_sequence_as_a_plain_loop(depth, steps):
    assert list(prefetched(lambda s: s * s, steps, depth)) == [(s, s * s) for s in steps]


def test_runs_ahead_in_another_thread_and_raises_at_the_failing_step():
    threads, calls = set(), []

    def make(step):
        threads.add(threading.current_thread().name)
        calls.append(step)
        if step == 4:
            raise RuntimeError("bad step 4")
        return step

    seen = []
    with pytest.raises(RuntimeError, match="bad step 4"):
        for step, _ in prefetched(make, range(10), depth=2):
            seen.append(step)
    assert seen == [0, 1, 2, 3] and threads == {"acljax-prefetch_0"}
    assert max(calls) <= 6  # never more than depth steps ahead, and nothing started after the failure


def test_stopping_early_cancels_what_was_not_started():
    calls = []
    for step, _ in prefetched(calls.append, range(100), depth=3):
        if step == 1:
            break
    assert max(calls) <= 4
