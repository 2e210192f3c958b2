"""Task streams: label mappings of each scenario, permutations and rotations."""

import re

import numpy as np
import pytest

from acljax.data import ImageSet
from acljax.data.streams import permuted_stream, rotated_stream, split_stream


def toy(n=200, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8), (np.arange(n) % classes).astype(np.int32))


@pytest.mark.parametrize("scenario, outputs, labels_of_task_2, mask_of_task_2", [
    ("task", 10, {4, 5}, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]),
    ("domain", 2, {0, 1}, [1, 1]),
    ("class", 10, {4, 5}, [1] * 10),
])
def test_split_mnist_mappings(scenario, outputs, labels_of_task_2, mask_of_task_2):
    train, test = toy(), toy(50, seed=1)
    stream = split_stream(train, test, scenario=scenario)
    assert stream.num_outputs == outputs and len(stream.tasks) == 5
    task = stream.tasks[2]
    assert set(task.train.y) == labels_of_task_2 and set(task.test.y) == labels_of_task_2
    np.testing.assert_array_equal(task.output_mask, mask_of_task_2)
    original = train.y[np.isin(train.y, [4, 5])]
    np.testing.assert_array_equal(task.train.x, train.x[np.isin(train.y, [4, 5])])
    np.testing.assert_array_equal(task.train.y % 2 if scenario != "domain" else task.train.y, original - 4)


def test_split_with_a_class_order():
    order = [9, 3, 0, 1, 2, 8]
    stream = split_stream(toy(), toy(50), num_tasks=2, classes_per_task=3, scenario="class", class_order=order)
    train = toy()
    expected = [order.index(c) for c in train.y if c in (9, 3, 0)]  # class 9 -> 0, 3 -> 1, 0 -> 2
    np.testing.assert_array_equal(stream.tasks[0].train.y, expected)
    assert set(stream.tasks[1].train.y) == {3, 4, 5}


def test_permuted_and_rotated_streams():
    train, test = toy(), toy(50, seed=1)
    permuted = permuted_stream(train, test, num_tasks=3, seed=0)
    np.testing.assert_array_equal(permuted.tasks[0].train.x, train.x)
    moved = permuted.tasks[1].train.x.reshape(200, -1)
    perm = [np.flatnonzero((train.x.reshape(200, -1) == moved[:, [j]]).all(0))[0] for j in range(36)]
    assert sorted(perm) == list(range(36)) and perm != list(range(36))  # a real permutation of pixels
    np.testing.assert_array_equal(permuted.tasks[2].train.y, train.y)  # domain: labels unchanged
    rotated = rotated_stream(train, test, angles=(0, 90, 180), scenario="class")
    np.testing.assert_array_equal(rotated.tasks[1].train.x[..., 0], np.rot90(train.x[..., 0], 1, axes=(1, 2)))
    np.testing.assert_array_equal(rotated.tasks[2].test.x[..., 0], np.rot90(test.x[..., 0], 2, axes=(1, 2)))
    np.testing.assert_array_equal(rotated.tasks[2].train.y, train.y + 20)
    assert rotated.num_outputs == 30


def test_bad_stream_arguments():
    with pytest.raises(ValueError, match="scenario must be one of"):
        split_stream(toy(), toy(), scenario="instance")
    with pytest.raises(ValueError, match="needs 12 classes, more than the 10 classes the data set has; give 1 to 5"):
        split_stream(toy(), toy(), num_tasks=6)
    with pytest.raises(ValueError, match="class_order must list distinct classes"):
        split_stream(toy(), toy(), num_tasks=1, class_order=[0, 0])


def test_per_class_halves_keep_each_class_first_half_in_order():
    from acljax.data.streams import per_class_halves

    rng = np.random.default_rng(3)
    data = ImageSet(rng.integers(0, 256, (53, 2, 2, 1), dtype=np.uint8), rng.integers(0, 7, 53).astype(np.int32))
    first, rest = per_class_halves(data)
    for c in range(7):  # the slow way: class c's images in order, split at half their number
        own = np.flatnonzero(data.y == c)
        half = len(own) // 2
        np.testing.assert_array_equal(first.x[first.y == c], data.x[own[:half]])
        np.testing.assert_array_equal(rest.x[rest.y == c], data.x[own[half:]])
    assert len(first.y) + len(rest.y) == 53


@pytest.fixture
def glyph_stand_in(monkeypatch):
    """120 stand-in glyph characters of 20 drawings each, pixel value = character, as the evaluation split."""
    from acljax.data import benchmarks

    characters = ImageSet(np.repeat(np.arange(120, dtype=np.uint8), 20)[:, None, None, None] * np.ones((1, 2, 2, 1),
                                                                                                   np.uint8),
                          np.repeat(np.arange(120, dtype=np.int32), 20))
    monkeypatch.setattr(benchmarks, "load", lambda name, split, pre: characters if (name, split) == (
        "glyphs", "evaluation") else pytest.fail(f"read {name}/{split}"))
    monkeypatch.setattr(benchmarks, "channel_statistics", lambda name, pre: (np.zeros(1), np.ones(1)))
    return benchmarks


def test_glyph_streams_are_domain_incremental_five_way_tasks_of_distinct_characters(glyph_stand_in):
    stream, statistics = glyph_stand_in.build_stream("split_glyphs_domain20", None)
    assert len(stream.tasks) == len(statistics) == 20 and stream.num_outputs == 5 and stream.scenario == "domain"
    seen = set()
    for task in stream.tasks:
        assert set(task.train.y) == set(task.test.y) == set(range(5)) and task.output_mask.all()
        own = {int(v) for v in task.train.x[:, 0, 0, 0]}  # pixel value = character
        assert len(own) == 5 and not own & seen and {int(v) for v in task.test.x[:, 0, 0, 0]} == own
        seen |= own
        assert len(task.train.y) == len(task.test.y) == 50  # 10 drawings each side per character


def test_glyph_streams_of_any_length_the_split_holds(glyph_stand_in):
    stream, statistics = glyph_stand_in.build_stream("split_glyphs_domain24", None)  # 24 x 5 = all 120 characters
    assert len(stream.tasks) == len(statistics) == 24
    assert sorted(int(v) for task in stream.tasks for v in set(task.train.x[:, 0, 0, 0])) == list(range(120))
    with pytest.raises(ValueError, match="split_glyphs_domain25: the glyph evaluation split has 120 characters, "
                                         "enough for at most 24 tasks of 5"):
        glyph_stand_in.build_stream("split_glyphs_domain25", None)
    for name in ("split_glyphs_domain0", "split_glyphs_domain", "split_glyphs_domain5x"):
        with pytest.raises(ValueError, match="stream must be one of .*split_glyphs_domainN"):
            glyph_stand_in.build_stream(name, None)


def _characters(stream) -> list[set[int]]:
    return [{int(v) for v in task.train.x[:, 0, 0, 0]} for task in stream.tasks]  # pixel value = character


def test_a_character_seed_draws_another_set_of_characters_seed_0_the_recorded_one(glyph_stand_in):
    recorded = _characters(glyph_stand_in.build_stream("split_glyphs_domain20", None)[0])
    # pinned: the recorded stream is the first 100 characters of the split's permutation drawn with seed 0
    order = np.random.default_rng(0).permutation(120)
    assert recorded == [set(order[5 * t:5 * t + 5].tolist()) for t in range(20)]
    assert _characters(glyph_stand_in.build_stream("split_glyphs_domain20", None, character_seed=0)[0]) == recorded
    other = _characters(glyph_stand_in.build_stream("split_glyphs_domain20", None, character_seed=1)[0])
    assert other == _characters(glyph_stand_in.build_stream("split_glyphs_domain20", None, character_seed=1)[0])
    assert other != recorded and all(len(t) == 5 for t in other) and len(set().union(*other)) == 100
    assert set().union(*other) != set().union(*recorded)  # other characters, not only another order


@pytest.mark.parametrize("stream,seed,message", [
    ("split_glyphs_domain5", -1, "character_seed must be an int from 0 to 2**63 - 1, got -1"),
    ("split_glyphs_domain5", True, "character_seed must be an int from 0 to 2**63 - 1, got True"),
    ("split_glyphs_domain5", 2 ** 63, "character_seed must be an int from 0 to 2**63 - 1, got 9223372036854775808"),
    ("split_mnist_domain", 2, "character_seed applies to split_glyphs_domainN streams only (they draw their "
                              "characters), got character_seed=2 with stream 'split_mnist_domain'")])
def test_a_character_seed_outside_glyph_streams_or_negative_is_refused(glyph_stand_in, stream, seed, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        glyph_stand_in.build_stream(stream, None, character_seed=seed)


@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
def test_a_streams_geometry_from_metadata_is_the_geometry_of_the_stream_built(tmp_path, scenario):
    """``stream_geometry`` reads shapes and labels from an .npz's headers without loading the images; the
    stream ``build_stream`` then loads has that example shape, number of outputs and scenario."""
    from acljax.data.benchmarks import build_stream, stream_geometry
    from acljax.data.registry import Preprocessing

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 4).astype(np.int32)
    x = rng.integers(0, 256, (len(y), 5, 7), dtype=np.uint8)  # (N, H, W): one channel, added on loading
    np.savez(tmp_path / "six.npz", x=x, y=y, x_test=x, y_test=y)
    shape, outputs, got = stream_geometry(str(tmp_path / "six.npz"), 2, scenario)
    stream, _ = build_stream(str(tmp_path / "six.npz"), Preprocessing(), classes_per_task=2, scenario=scenario)
    assert (shape, outputs, got) == (stream.tasks[0].train.x.shape[1:], stream.num_outputs, stream.scenario)
    assert outputs == (2 if scenario == "domain" else 6)
