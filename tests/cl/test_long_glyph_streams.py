"""experiments/long_glyph_streams.py end to end on a tiny stand-in for the glyph set: a shipped model and a
sequential baseline on the 5-task stream, the table beside the paper's figures, and resuming."""

import json

import numpy as np
import pytest

from acljax.data import ImageSet
from acljax.data.store import DATA_DIR_ENV, write_prepared


def _tiny_glyphs(root, classes: int = 25, drawings: int = 10) -> None:
    rng = np.random.default_rng(0)

    def split():
        return ImageSet(rng.integers(0, 256, (classes * drawings, 32, 32, 1), dtype=np.uint8),
                        np.repeat(np.arange(classes), drawings).astype(np.int32))

    write_prepared("glyphs", {"background": split(), "evaluation": split()}, {"source": "test"}, root=root)


def test_five_task_stream_table_and_resume(tmp_path, monkeypatch, capsys, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_glyphs(tmp_path / "data")  # 25 characters: exactly 5 tasks of 5, each with 5 demos and 5 test drawings
    script = experiment_script("long_glyph_streams")
    out = tmp_path / "out"
    args = ["--lengths", "5", "--runs", "2", "--models", "glyphs_2task_acl", "--baselines", "Adam", "--out", str(out)]
    assert script.main(args) == 0
    results = json.loads((out / "long_glyph_streams.json").read_text())
    assert set(results) == {"in context: glyphs_2task_acl/5", "Adam/5"}
    assert results["in context: glyphs_2task_acl/5"]["setting"] == {"model": "glyphs_2task_acl", "shots": 5}
    assert results["Adam/5"]["setting"]["config"]["epochs"] == 20  # the script's training, not the default
    table = (out / "long_glyph_streams.md").read_text()
    assert "| ACL, Split-Omniglot (paper) | 92.3 |" in table
    for learner, entry in (("in context: glyphs_2task_acl", results["in context: glyphs_2task_acl/5"]),
                           ("Adam", results["Adam/5"])):
        acc = entry["ACC"]
        assert entry["runs"] == 2 and 0.05 < acc["mean"] < 0.4  # noise images: 5-way chance, 20%
        assert f"| {learner} | {100 * acc['mean']:.1f} ± {100 * acc['std']:.1f} |" in table
    assert (out / "long_glyph_streams.png").stat().st_size > 0

    capsys.readouterr()
    assert script.main(args) == 0  # finished entries with this configuration are kept, not run again
    assert capsys.readouterr().out.count("kept from") == 2

    assert script.main([args[0], "5", "4", *args[2:]]) == 0  # a length of no paper figure: "-" in its column
    table = (out / "long_glyph_streams.md").read_text()
    assert "| ACL, Split-Omniglot (paper) | 92.3 | - |" in table
    assert set(json.loads((out / "long_glyph_streams.json").read_text())) == {
        f"{learner}/{n}" for learner in ("in context: glyphs_2task_acl", "Adam") for n in (4, 5)}


def test_lengths_are_checked(tmp_path, monkeypatch, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_glyphs(tmp_path / "data")
    script = experiment_script("long_glyph_streams")
    common = ["--runs", "1", "--models", "glyphs_2task_acl", "--baselines", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        script.main(["--lengths", "0", *common])
    with pytest.raises(ValueError, match="split_glyphs_domain6: the glyph evaluation split has 25 characters"):
        script.main(["--lengths", "6", *common])
