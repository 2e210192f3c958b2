"""The rendered glyph set: statistics the issue asks for, checked on the real set built from the fonts."""

import dataclasses
import unicodedata

import numpy as np
import pytest

from acljax.data.glyphs import NOTO_DIR, GlyphConfig, build_glyph_set, drop_near_duplicates, render

pytestmark = [pytest.mark.skipif(not NOTO_DIR.exists(), reason="needs fonts-noto-core (scripts/setup.sh installs it)"),
              pytest.mark.xdist_group("fresh_machine")]  # one worker renders the glyph set once


@pytest.fixture(scope="module")
def glyphs(quickstart_on_empty_cache):
    """The default glyph set (``build_glyph_set(GlyphConfig())``) as the fresh-cache quickstart rendered and
    stored it: (splits, info), read back from that cache rather than rendered a second time."""
    from acljax.data.store import read_info, read_split

    _, cache, _ = quickstart_on_empty_cache
    info = read_info("glyphs", cache)
    assert info["config"] == dataclasses.asdict(GlyphConfig())
    return {split: read_split("glyphs", split, cache) for split in info["splits"]}, info


def test_size_alphabets_and_drawers(glyphs):
    splits, info = glyphs
    classes = info["classes"]["background"] + info["classes"]["evaluation"]
    assert len(classes) >= 1500
    assert len(set(info["alphabets"]["background"]) | set(info["alphabets"]["evaluation"])) >= 50
    for split, data in splits.items():
        counts = np.bincount(data.y)
        assert (counts >= 20).all() and len(counts) == len(info["classes"][split])
        assert data.x.shape[1:] == (32, 32, 1) and data.x.dtype == np.uint8


def test_split_by_alphabet(glyphs):
    _, info = glyphs
    background, evaluation = set(info["alphabets"]["background"]), set(info["alphabets"]["evaluation"])
    assert not background & evaluation
    assert 0.2 < len(evaluation) / (len(background) + len(evaluation)) < 0.4


def test_no_duplicates_no_accented_forms_no_empty_glyphs(glyphs):
    splits, info = glyphs
    chars = [c["char"] for s in ("background", "evaluation") for c in info["classes"][s]]
    assert len(set(chars)) == len(chars)
    assert all(unicodedata.decomposition(c) == "" for c in chars)  # no precomposed accented letters
    assert all(unicodedata.category(c).startswith("L") for c in chars)
    for data in splits.values():
        ink = (data.x > 127).sum(axis=(1, 2, 3))
        assert ink.min() >= 8  # every rendering has ink
        # canonical forms of different characters are not near-identical (mean of each class's drawers)
        means = np.stack([data.x[data.y == c].mean(0).ravel() > 127 for c in range(data.y.max() + 1)]).astype(float)
        inter = means @ means.T
        iou = inter / np.maximum(means.sum(1)[:, None] + means.sum(1)[None] - inter, 1)
        np.fill_diagonal(iou, 0)
        assert iou.max() < 0.95


def test_glyphs_fit_their_box(glyphs):
    splits, _ = glyphs
    x = splits["background"].x[..., 0] > 16
    assert not x[:, 0, :].any() and not x[:, -1, :].any() and not x[:, :, 0].any() and not x[:, :, -1].any()
    def span(has_ink):  # (N, 32) -> distance from the first to the last inked row (or column)
        return 32 - has_ink.argmax(1) - has_ink[:, ::-1].argmax(1)

    extent = np.maximum(span(x.any(2)), span(x.any(1)))
    assert extent.min() >= 20  # the ink spans most of the box in its longer direction


def test_drawers_differ_and_tofu_is_not_rendered(glyphs):
    splits, _ = glyphs
    data = splits["background"]
    same_class = data.x[data.y == 0]
    assert len({d.tobytes() for d in same_class}) == len(same_class)  # every drawer renders differently
    notdef = render(NOTO_DIR / "NotoSans-Regular.ttf", 0xE000, 32) > 127  # an unmapped codepoint: the tofu box
    flat = (data.x[..., 0] > 127).reshape(len(data.x), -1)
    overlap = (flat & notdef.ravel()).sum(1) / (flat | notdef.ravel()).sum(1)
    assert overlap.max() < 0.9


def test_deterministic_for_a_seed(monkeypatch):
    from acljax.data import glyphs

    few = sorted(glyphs.find_alphabets(), key=lambda a: len(a.codepoints))[:12]  # screening all takes seconds
    monkeypatch.setattr(glyphs, "find_alphabets", lambda font_dir: few)
    small = GlyphConfig(drawers=3, max_per_alphabet=2, min_per_alphabet=1)
    a, info_a = build_glyph_set(small, progress=False)
    b, info_b = build_glyph_set(small, progress=False)
    c, _ = build_glyph_set(dataclasses.replace(small, seed=1), progress=False)
    assert info_a == info_b
    np.testing.assert_array_equal(a["background"].x, b["background"].x)
    assert not np.array_equal(a["background"].x, c["background"].x)


def test_near_duplicates_in_blocks_match_a_pairwise_loop():
    """The blocked greedy screening keeps exactly what a plain loop over pairs keeps (IoU of dilated bitmaps
    computed with set arithmetic), whatever the block size."""
    rng = np.random.default_rng(0)
    base = rng.random((6, 8, 8)) < 0.3
    near_copies = base ^ (rng.random((6, 8, 8)) < 0.05)
    bitmaps = np.concatenate([base, near_copies, rng.random((8, 8, 8)) < 0.3])[rng.permutation(20)]
    groups = [int(g) for g in rng.integers(0, 3, 20)]

    def inked(b):  # pixels of b dilated by one (3x3) as a set
        rows, cols = np.nonzero(b)
        return {(r + dr, c + dc) for r, c in zip(rows, cols) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                if 0 <= r + dr < 8 and 0 <= c + dc < 8}

    sets = [inked(b) for b in bitmaps]
    expected, counts = [], {}
    for i in range(20):
        if counts.get(groups[i], 0) >= 4:
            continue
        if any(len(sets[i] & sets[j]) / max(len(sets[i] | sets[j]), 1) > 0.6 for j in expected):
            continue
        expected.append(i)
        counts[groups[i]] = counts.get(groups[i], 0) + 1
    assert 0 < len(expected) < 20
    for block in (1, 3, 7, 1024):
        assert drop_near_duplicates(bitmaps, groups, max_per_group=4, threshold=0.6, block=block) == expected
