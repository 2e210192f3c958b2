"""The README's main command as a newcomer runs it: the installed ``acljax`` command, an empty data cache
(the glyph set is rendered and its statistics computed on first use), the shipped checkpoints."""

import json


def test_quickstart_on_an_empty_cache(quickstart_on_empty_cache):
    done, data, workdir = quickstart_on_empty_cache
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((data / "glyphs" / "info.json").read_text())
    assert set(info["splits"]) == {"background", "evaluation"} and len(info["mean"]) == 1
    summary = json.loads((workdir / "summary.json").read_text())
    acl, no_acl = summary["test"]["ACL"], summary["test"]["no ACL"]
    # the paper's effect (REFERENCE.md §3): both learn each task in context far above chance (20 %), and
    # without the ACL term task A falls towards chance once B is learned; with it, A survives
    for model in (acl, no_acl):
        assert model["acc/within_0"] > 0.8 and model["acc/within_1"] > 0.7
    assert acl["acc/backward_0_after_1"] > 0.7 and no_acl["acc/backward_0_after_1"] < 0.55
    assert "| ACL | " in done.stdout and "| no ACL | " in done.stdout
    for name in ("summary.md", "accuracy.png", "meta_training_terms.png", "pretraining_terms.png",
                 "fast_weights.png"):
        assert (workdir / name).stat().st_size > 0, name
