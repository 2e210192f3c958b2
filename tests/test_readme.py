"""Every Python snippet of README.md runs as written, on a fresh data cache: the glyph set the quickstart
rendered on first use, and a small random stand-in under the name "mnist" (MNIST itself needs a download)."""

import re
from pathlib import Path

import numpy as np
import pytest

from acljax.data import ImageSet
from acljax.data.store import write_prepared

pytestmark = pytest.mark.xdist_group("fresh_machine")  # one worker renders the glyph set once

README = Path(__file__).parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _mnist_stand_in(root: Path) -> None:
    """10 digits x 65 random images: 130 per 2-digit task, one batch of 128 (the trainer's default)."""
    rng = np.random.default_rng(0)

    def split(per_class):
        return ImageSet(rng.integers(0, 256, (10 * per_class, 28, 28, 1), dtype=np.uint8),
                        np.repeat(np.arange(10), per_class).astype(np.int32))

    write_prepared("mnist", {"train": split(65), "validation": split(2), "test": split(5)}, {"source": "test"},
                   root=root)


@pytest.fixture
def readme_data(quickstart_on_empty_cache, tmp_path, monkeypatch):
    _, fresh_cache, _ = quickstart_on_empty_cache
    data = tmp_path / "data"
    data.mkdir()
    (data / "glyphs").symlink_to(fresh_cache / "glyphs")
    _mnist_stand_in(data)
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)  # whatever a snippet writes stays out of the checkout


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs_as_written(code, readme_data):
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
