"""An Omniglot-like glyph set rendered from Debian's Noto fonts (no Omniglot can be had offline).

Alphabets are scripts (one Noto Sans font each; Greek and Cyrillic from NotoSans-Regular; Hiragana,
Katakana and Bopomofo from GNU Unifont);
characters are the script's letters (Unicode category L*, no precomposed accented forms), minus
empty renderings, tofu (the font's .notdef shape) and near-duplicates of an earlier character
(bitmap IoU above a threshold, e.g. Cyrillic A vs Greek Alpha); at most ``max_per_alphabet`` per
alphabet, chosen deterministically. Each "drawer" renders a character with a random weight
(regular/bold), stroke width and affine warp, then fits the ink into the box. Alphabets are split
into background/evaluation sets, like Omniglot.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from tqdm import tqdm

from acljax.data.store import ImageSet

NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
UNIFONT_RANGES = {"Hiragana": (0x3040, 0x309F), "Katakana": (0x30A0, 0x30FF),
                  "Bopomofo": (0x3100, 0x312F)}  # scripts Noto core lacks, from GNU Unifont
SKIP_FONTS = re.compile(r"Display|Unjoined|Math|Symbols|Numerals|SignWriting|Supplement|Tifinagh[A-Z]|Mono")
RANGES = {"Greek": (0x0370, 0x03FF), "Cyrillic": (0x0400, 0x052F)}  # taken from NotoSans-Regular
RENDER_PX, CANVAS_PX = 48, 96


@dataclasses.dataclass(frozen=True)
class GlyphConfig:
    size: int = 32
    drawers: int = 20
    max_per_alphabet: int = 30
    min_per_alphabet: int = 10
    evaluation_fraction: float = 0.3
    duplicate_iou: float = 0.8
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Alphabet:
    name: str
    regular: Path
    bold: Path | None
    codepoints: tuple[int, ...]
    bold_codepoints: frozenset[int] = frozenset()  # what the bold font maps (it may lack some letters)


def _is_letter(cp: int) -> bool:
    ch = chr(cp)
    return unicodedata.category(ch).startswith("L") and not unicodedata.decomposition(ch)


def _letters_in(cmap, lo: int, hi: int) -> tuple[int, ...]:
    return tuple(cp for cp in sorted(cmap) if lo <= cp <= hi and _is_letter(cp))


def find_alphabets(font_dir: Path = NOTO_DIR, unifont: Path = UNIFONT) -> list[Alphabet]:
    """One alphabet per Noto Sans script font with its letters; Greek and Cyrillic from NotoSans-Regular;
    the ``UNIFONT_RANGES`` scripts from Unifont when it is installed."""
    from fontTools.ttLib import TTFont

    alphabets = []
    if unifont.exists():
        cmap = TTFont(unifont, lazy=True).getBestCmap()
        alphabets += [Alphabet(name, unifont, None, _letters_in(cmap, lo, hi))
                      for name, (lo, hi) in UNIFONT_RANGES.items()]
    for regular in sorted(font_dir.glob("NotoSans*-Regular.ttf")):
        script = regular.name[len("NotoSans"):-len("-Regular.ttf")]
        if SKIP_FONTS.search(script):
            continue
        bold_path = regular.with_name(regular.name.replace("-Regular", "-Bold"))
        bold = bold_path if bold_path.exists() else None
        bold_cps = frozenset(TTFont(bold, lazy=True).getBestCmap()) if bold else frozenset()
        cmap = TTFont(regular, lazy=True).getBestCmap()
        if script == "":
            alphabets += [Alphabet(name, regular, bold, _letters_in(cmap, lo, hi), bold_cps)
                          for name, (lo, hi) in RANGES.items()]
            continue
        cps = tuple(cp for cp in sorted(cmap) if cp >= 0x0370 and _is_letter(cp))
        alphabets.append(Alphabet(script, regular, bold, cps, bold_cps))
    return alphabets


@lru_cache(maxsize=512)
def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px)


def fit_to_box(ink: np.ndarray, size: int, margin: int = 2) -> np.ndarray:
    """Crop a uint8 image to its ink, scale it (keeping aspect) into a size x size box with a margin, and
    stretch its contrast to a maximum of 255 (hairlines of large glyphs would otherwise fade to grey)."""
    inked = ink > 16
    rows, cols = np.flatnonzero(inked.any(1)), np.flatnonzero(inked.any(0))
    if len(rows) == 0:
        return np.zeros((size, size), np.uint8)
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = (size - 2 * margin) / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))
    out = np.zeros((size, size), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = small
    peak = int(out.max())
    return out if peak in (0, 255) else np.clip(np.rint(out * (255.0 / peak)), 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)  # a character's drawers reuse its few (font, stroke) drawings
def _drawn(font_path: Path, cp: int, stroke: int) -> Image.Image:
    """The character centred on the canvas, white on black; not to be changed (it is shared)."""
    canvas = Image.new("L", (CANVAS_PX, CANVAS_PX), 0)
    ImageDraw.Draw(canvas).text((CANVAS_PX / 2, CANVAS_PX / 2), chr(cp), fill=255, font=_font(font_path, RENDER_PX),
                                anchor="mm", stroke_width=stroke, stroke_fill=255)
    return canvas


def render(font_path: Path, cp: int, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """White-on-black (size, size) uint8 rendering; with ``rng``, a random stroke width and affine warp."""
    stroke = 0 if rng is None else int(rng.integers(0, 3))
    canvas = _drawn(font_path, cp, stroke)
    if rng is not None:
        angle = np.deg2rad(rng.uniform(-12, 12))
        shear = rng.uniform(-0.2, 0.2)
        sx, sy = rng.uniform(0.8, 1.15, 2)
        a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ [[sx, shear], [0, sy]]
        inv = np.linalg.inv(a)
        c = CANVAS_PX / 2
        offset = np.array([c, c]) - inv @ np.array([c, c])
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                                  (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1]),
                                  resample=Image.Resampling.BILINEAR)
    margin = 2 if rng is None else int(rng.integers(1, 5))
    return fit_to_box(np.asarray(canvas), size, margin)


IOU_BLOCK = 1024  # candidates compared per block: memory ~ IOU_BLOCK x N floats, not N x N


def drop_near_duplicates(bitmaps: np.ndarray, groups: list[int], max_per_group: int, threshold: float,
                         block: int = IOU_BLOCK) -> list[int]:
    """Greedy pass in order over (N, s, s) bool bitmaps: keep a bitmap unless its group already has
    ``max_per_group`` or its IoU with a kept one exceeds ``threshold``. IoU is taken after dilating each
    bitmap by one pixel (stroke width matters less). Returns the kept indices (ascending)."""
    dilated = ndimage.binary_dilation(bitmaps, structure=np.ones((1, 3, 3), bool))
    flat = dilated.reshape(len(dilated), -1).astype(np.float32)  # 0/1: the products below are exact counts
    area = flat.sum(1)
    chosen, per_group = [], {}
    for start in range(0, len(flat), block):
        stop = min(start + block, len(flat))
        inter = flat[start:stop] @ flat[:stop].T  # rows of this block against every earlier candidate
        iou = inter / np.maximum(area[start:stop, None] + area[None, :stop] - inter, 1)
        for i in range(start, stop):
            if per_group.get(groups[i], 0) >= max_per_group:
                continue
            if chosen and iou[i - start, chosen].max() > threshold:
                continue
            chosen.append(i)
            per_group[groups[i]] = per_group.get(groups[i], 0) + 1
    return chosen


def select_characters(alphabets: list[Alphabet], config: GlyphConfig, progress: bool = True):
    """Canonical renderings -> (alphabet index, codepoint) of the kept characters, in a fixed order."""
    rng = np.random.default_rng(config.seed)
    candidates, bitmaps, claimed = [], [], set()
    for a, alphabet in enumerate(tqdm(alphabets, desc="glyphs: screening", disable=not progress)):
        tofu = render(alphabet.regular, 0xE000, config.size) > 127  # unmapped: the .notdef shape
        kept = []
        font = _font(alphabet.regular, RENDER_PX)
        for cp in alphabet.codepoints:
            if cp in claimed:
                continue  # a script font may also map another script's letters: the first alphabet keeps it
            claimed.add(cp)
            left, top, right, bottom = font.getbbox(chr(cp))
            width, height = right - left, bottom - top
            if max(width, height) < RENDER_PX // 4 or max(width, height) > 4 * max(min(width, height), 1):
                continue  # empty, a dot, a bar or a dash: degenerate once fit into the box
            bitmap = render(alphabet.regular, cp, config.size) > 127
            if tofu.any() and (bitmap & tofu).sum() / (bitmap | tofu).sum() > 0.9:
                continue
            kept.append((cp, bitmap))
        order = rng.permutation(len(kept))[:3 * config.max_per_alphabet]  # screen a few more than needed
        for i in sorted(order):
            candidates.append((a, kept[i][0]))
            bitmaps.append(kept[i][1])
    groups = [a for a, _ in candidates]
    chosen = drop_near_duplicates(np.stack(bitmaps), groups, config.max_per_alphabet, config.duplicate_iou)
    kept_per_alphabet = Counter(groups[i] for i in chosen)
    keep_alphabets = {a for a, n in kept_per_alphabet.items() if n >= config.min_per_alphabet}
    return [candidates[i] for i in chosen if candidates[i][0] in keep_alphabets]


def build_glyph_set(config: GlyphConfig = GlyphConfig(), font_dir: Path = NOTO_DIR,
                    progress: bool = True) -> tuple[dict[str, ImageSet], dict]:
    """Render the background and evaluation splits -> (splits, info) where info["classes"][split] lists
    each class's alphabet and character."""
    if not font_dir.exists():
        raise FileNotFoundError(f"{font_dir} not found: apt-get install fonts-noto-core (Debian) to render glyphs")
    alphabets = find_alphabets(font_dir)
    characters = select_characters(alphabets, config, progress)
    used = sorted({a for a, _ in characters})
    order = np.random.default_rng(config.seed + 1).permutation(len(used))
    n_eval = round(config.evaluation_fraction * len(used))
    evaluation = {used[i] for i in order[:n_eval]}
    splits, classes = {}, {}
    for split in ("background", "evaluation"):
        chars = [(a, cp) for a, cp in characters if (a in evaluation) == (split == "evaluation")]
        x = np.empty((len(chars) * config.drawers, config.size, config.size, 1), np.uint8)
        for c, (a, cp) in enumerate(tqdm(chars, desc=f"glyphs: rendering {split}", disable=not progress)):
            for d in range(config.drawers):
                rng = np.random.default_rng([config.seed, a, cp, d])
                bold = cp in alphabets[a].bold_codepoints and rng.random() < 0.5
                font = alphabets[a].bold if bold else alphabets[a].regular
                x[c * config.drawers + d, ..., 0] = render(font, cp, config.size, rng)
        y = np.repeat(np.arange(len(chars), dtype=np.int32), config.drawers)
        splits[split] = ImageSet(x, y)
        classes[split] = [{"alphabet": alphabets[a].name, "char": chr(cp)} for a, cp in chars]
    info = {"config": dataclasses.asdict(config), "classes": classes,
            "alphabets": {s: sorted({c["alphabet"] for c in classes[s]}) for s in classes}}
    return splits, info
