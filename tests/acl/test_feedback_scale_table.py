"""experiments/feedback_scale.py: the runs it asks for, when a run left chance, the table, kept entries."""

import json

import pytest

TERM_KEYS = ("acc/within_0", "acc/within_1", "acc/backward_0_after_1")


def fake_meta_train(losses, terms, trained):
    """Stands in for acljax's meta_train: records the config and writes a finished workdir."""

    def meta_train(config, workdir):
        trained.append(config)
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps({"test": dict(zip(TERM_KEYS, terms, strict=True))}))
        rows = [{"step": 50 * (i + 1), "loss": loss, "sec_per_step": 0.1 * (i + 1)} for i, loss in enumerate(losses)]
        rows.insert(2, {"step": 100, "valid/loss": 1.0})  # validation rows have no training loss
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return meta_train


def test_runs_left_chance_table_and_kept_entries(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("feedback_scale")
    monkeypatch.setattr(script, "WORKDIRS", tmp_path / "workdirs")
    trained = []
    monkeypatch.setattr(script, "meta_train", fake_meta_train([1.7, 1.61, 1.52, 1.49, 1.2], (0.9, 0.8, 0.7), trained))
    out = tmp_path / "out"
    assert script.main(["--scales", "16", "--seeds", "1", "--steps", "250", "--out", str(out)]) == 0
    assert [(c.model.feedback_scale, c.seed, c.steps, c.model.encoder) for c in trained] == [(16.0, 1, 250, "mlp")]
    row = json.loads((out / "feedback_scale.json").read_text())[0]
    assert row["left_chance_at"] == 200  # the first loss below 1.5: 1.49 at step 200
    assert row["sec_per_step"] == pytest.approx(0.3)  # median of 0.1 .. 0.5
    table = (out / "feedback_scale.md").read_text()
    assert "| acl_glyphs_quickstart | 16 | 1 | 250 | 200 | 90.0 | 80.0 | 70.0 | 0.30 |" in table

    monkeypatch.setattr(script, "meta_train", fake_meta_train([1.7, 1.61, 1.6, 1.6, 1.6], (0.2, 0.2, 0.2), trained))
    assert script.main(["--scales", "1", "--seeds", "1", "--steps", "250", "--out", str(out)]) == 0
    rows = json.loads((out / "feedback_scale.json").read_text())
    assert [(r["feedback_scale"], r["left_chance_at"]) for r in rows] == [(1.0, None), (16.0, 200)]  # kept, sorted
    table = (out / "feedback_scale.md").read_text()
    assert "| acl_glyphs_quickstart | 1 | 1 | 250 | - | 20.0 | 20.0 | 20.0 | 0.30 |" in table

    assert script.main(["--scales", "16", "--seeds", "1", "--out", str(out)]) == 0  # a finished workdir is read
    assert len(trained) == 2
