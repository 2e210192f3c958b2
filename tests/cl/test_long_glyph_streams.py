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
    monkeypatch.setattr(script, "LENGTHS", [5])
    monkeypatch.setattr(script, "RUNS", 2)
    monkeypatch.setattr(script, "SHIPPED", ("glyphs_2task_acl",))
    monkeypatch.setattr(script, "STAGES", ())
    job, out = tmp_path / "baselines", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    script.baselines(job, lengths=[5], runs=2, names=["Adam"])
    script.report({"baselines": job}, out)
    results = json.loads((out / "long_glyph_streams.json").read_text())
    assert set(results) == {"in context: glyphs_2task_acl/5", "Adam/5"}
    setting = results["in context: glyphs_2task_acl/5"]["setting"]
    assert setting["model"] == "glyphs_2task_acl" and setting["shots"] == 5
    assert results["Adam/5"]["setting"]["config"]["epochs"] == 20  # the experiment's training, not the default
    table = (out / "long_glyph_streams.md").read_text()
    assert "| ACL, Split-Omniglot (paper) | 92.3 |" in table
    for learner, entry in (("in context: glyphs_2task_acl", results["in context: glyphs_2task_acl/5"]),
                           ("Adam", results["Adam/5"])):
        acc = entry["ACC"]
        assert entry["runs"] == 2 and 0.05 < acc["mean"] < 0.4  # noise images: 5-way chance, 20%
        assert f"| {learner} | {100 * acc['mean']:.1f} ± {100 * acc['std']:.1f} |" in table
    assert (out / "long_glyph_streams.png").stat().st_size > 0

    capsys.readouterr()
    script.baselines(job, lengths=[5], runs=2, names=["Adam"])
    script.report({"baselines": job}, out)  # finished entries with this configuration are kept, not run again
    assert capsys.readouterr().out.count("kept from") == 2

    monkeypatch.setattr(script, "LENGTHS", [5, 4])
    script.baselines(job, lengths=[5, 4], runs=2, names=["Adam"])
    script.report({"baselines": job}, out)  # a length of no paper figure: "-" in its column
    assert "| ACL, Split-Omniglot (paper) | 92.3 | - |" in (out / "long_glyph_streams.md").read_text()
    assert set(json.loads((out / "long_glyph_streams.json").read_text())) == {
        f"{learner}/{n}" for learner in ("in context: glyphs_2task_acl", "Adam") for n in (4, 5)}


def test_lengths_are_checked(tmp_path, monkeypatch, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_glyphs(tmp_path / "data")
    script = experiment_script("long_glyph_streams")
    with pytest.raises(ValueError, match="lengths must be distinct positive numbers of tasks, got \\[0\\]"):
        script.baselines(tmp_path, lengths=[0])
    with pytest.raises(ValueError, match="split_glyphs_domain6: the glyph evaluation split has 25 characters"):
        script.baselines(tmp_path, lengths=[6], runs=1, names=["Adam"])
