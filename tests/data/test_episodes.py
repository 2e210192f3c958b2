"""Episode sampler invariants, checked on a data set whose every image encodes its own index."""

import numpy as np
import pytest

from acljax.data import DEMO, QUERY, SHOT, ClassPool, ImageSet, TaskSpec, sample_episodes


def indexed_pool(num_classes=12, per_class=20, name="toy"):
    """Image i holds i in its first two pixels, so a sampled image tells which example it is."""
    n = num_classes * per_class
    x = np.zeros((n, 4, 4, 1), np.uint8)
    x[:, 0, 0, 0], x[:, 0, 1, 0] = np.arange(n) // 256, np.arange(n) % 256
    y = np.random.default_rng(1).permutation(np.repeat(np.arange(num_classes), per_class))
    return ClassPool(ImageSet(x, y), mean=0.0, std=1.0, name=name), y


def example_ids(episodes):
    pixels = np.rint(episodes.x[..., 0, 0:2, 0] * 255).astype(int)
    return pixels[..., 0] * 256 + pixels[..., 1]  # (B, L)


def test_layout_labels_and_disjoint_examples():
    pool, true_class = indexed_pool()
    tasks = [TaskSpec(3, 4, 5, first_shot=True), TaskSpec(3, 4, 5, first_shot=True)]
    ep = sample_episodes(np.random.default_rng(0), [pool], tasks, 16)
    length = 3 + 12 + 5
    assert ep.x.shape == (16, 2 * length, 4, 4, 1)
    np.testing.assert_array_equal(ep.task, np.repeat([0, 1], length))
    np.testing.assert_array_equal(ep.kind[:length], [SHOT] * 3 + [DEMO] * 12 + [QUERY] * 5)
    ids = example_ids(ep)
    assert ids.max() < len(true_class)
    for b in range(16):
        assert len(set(ids[b])) == ids.shape[1]  # every position a distinct image: shot/demo/query disjoint
        for t in range(2):
            block = ep.task == t
            classes = true_class[ids[b, block]]
            labels = ep.target[b, block]
            mapping = {c: set(labels[classes == c]) for c in set(classes)}
            assert len(mapping) == 3 and all(len(v) == 1 for v in mapping.values())  # one label per class
            assert sorted(v.pop() for v in mapping.values()) == [0, 1, 2]
        assert not set(true_class[ids[b, ep.task == 0]]) & set(true_class[ids[b, ep.task == 1]])  # disjoint classes
    demo = ep.kind == DEMO
    np.testing.assert_array_equal(ep.feedback[:, demo], ep.target[:, demo])
    assert (ep.feedback[:, ep.kind == QUERY] == 3).all()  # the "unknown" token is N
    np.testing.assert_array_equal(np.sort(ep.target[:, (ep.kind == SHOT) & (ep.task == 0)]),
                                  np.tile([0, 1, 2], (16, 1)))  # one first shot per class
    counts = np.stack([(ep.target[:, demo & (ep.task == 0)] == c).sum(1) for c in range(3)])
    assert (counts == 4).all()  # K demos per class


def test_queries_are_balanced_and_demos_interleaved():
    pool, _ = indexed_pool()
    ep = sample_episodes(np.random.default_rng(0), [pool], [TaskSpec(4, 3, 8)], 64)
    queries = ep.target[:, ep.kind == QUERY]
    for c in range(4):
        assert ((queries == c).sum(1) == 2).all()
    demos = ep.target[:, ep.kind == DEMO]
    assert (np.diff(demos, axis=1) != 0).mean() > 0.5  # not grouped by class


def test_every_class_gets_every_label_across_episodes():
    pool, true_class = indexed_pool(num_classes=5)
    ep = sample_episodes(np.random.default_rng(0), [pool], [TaskSpec(5, 2, 1)], 400)
    ids, demo = example_ids(ep), ep.kind == DEMO
    seen = {(c, label) for c, label in zip(true_class[ids[:, demo]].ravel(), ep.target[:, demo].ravel())}
    assert seen == {(c, label) for c in range(5) for label in range(5)}


def test_same_seed_same_episodes_and_class_incremental_offsets():
    pool, _ = indexed_pool()
    tasks = [TaskSpec(2, 2, 2, label_offset=2 * t) for t in range(3)]
    a = sample_episodes(np.random.default_rng(5), [pool], tasks, 4)
    b = sample_episodes(np.random.default_rng(5), [pool], tasks, 4)
    c = sample_episodes(np.random.default_rng(6), [pool], tasks, 4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    for t in range(3):
        assert set(np.unique(a.target[:, a.task == t])) == {2 * t, 2 * t + 1}
    assert (a.feedback[:, a.kind == QUERY] == 6).all()  # unknown = 3 tasks x 2 classes


def test_two_pools_and_normalisation():
    pool_a, _ = indexed_pool(name="a")
    x = np.full((40, 4, 4, 1), 255, np.uint8)
    pool_b = ClassPool(ImageSet(x, np.arange(40) % 8), mean=0.5, std=0.25, name="b")
    ep = sample_episodes(np.random.default_rng(0), [pool_a, pool_b], [TaskSpec(2, 2, 1), TaskSpec(2, 2, 1, pool=1)], 2)
    np.testing.assert_allclose(ep.x[:, ep.task == 1], (1.0 - 0.5) / 0.25)


@pytest.mark.parametrize("tasks, message", [
    ([TaskSpec(13, 1, 1)], "need 13 distinct classes .* it has 12"),
    ([TaskSpec(5, 1, 1), TaskSpec(8, 1, 1)], "need 13 distinct classes"),
    ([TaskSpec(5, 19, 6)], "needs 21 examples per class; the smallest class has 20"),
    ([TaskSpec(2, 1, 1, pool=1)], "pool=1 but only 1 pools"),
    ([], "at least one TaskSpec"),
])
def test_impossible_requests_raise_clear_errors(tasks, message):
    pool, _ = indexed_pool()
    with pytest.raises(ValueError, match=message):
        sample_episodes(np.random.default_rng(0), [pool], tasks, 2)


def test_bad_task_spec():
    with pytest.raises(ValueError, match="TaskSpec.k_shot must be a positive int, got 0"):
        TaskSpec(5, 0, 1)
