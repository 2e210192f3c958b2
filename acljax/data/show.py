"""Contact sheets: a PNG grid of a data set's classes (rows) and examples (columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from acljax.data.store import ImageSet

LABEL_PX = 150


def contact_sheet(data: ImageSet, path: str | Path, *, rows: int = 24, columns: int = 20, scale: int = 2,
                  row_labels: list[str] | None = None) -> Path:
    """Classes evenly spread over the label range, one per row, with their first ``columns`` examples.

    row_labels: optional name per class (e.g. the glyph's alphabet), drawn at the left of its row.
    """
    classes = np.unique(data.y)
    picked = classes[np.linspace(0, len(classes) - 1, min(rows, len(classes))).round().astype(int)]
    h, w, c = data.x.shape[1:]
    left = LABEL_PX if row_labels else 0
    sheet = Image.new("RGB", (left + columns * w * scale, len(picked) * h * scale), "white")
    draw = ImageDraw.Draw(sheet)
    for r, cls in enumerate(picked):
        examples = data.x[data.y == cls][:columns]
        for col, image in enumerate(examples):
            tile = Image.fromarray(image[..., 0] if c == 1 else image).convert("RGB")
            sheet.paste(tile.resize((w * scale, h * scale), Image.Resampling.NEAREST),
                        (left + col * w * scale, r * h * scale))
        if row_labels:
            draw.text((4, r * h * scale + h * scale // 3), f"{row_labels[cls]} ({cls})", fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
