"""experiments/feedback_scale.py: the runs it asks for, when a run left chance, the table, kept entries, runs
continued to more steps, Split-MNIST meta-finetuning and its spread over seeds."""

import json

import pytest

TERM_KEYS = ("acc/within_0", "acc/within_1", "acc/backward_0_after_1")


def fake_meta_train(losses, terms, trained):
    """Stands in for acljax's meta_train: records the config and writes a finished workdir (or continues one), the
    losses logged at evenly spaced steps up to ``config.steps``."""

    def meta_train(config, workdir):
        trained.append(config)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "results.json").write_text(json.dumps({"test": dict(zip(TERM_KEYS, terms, strict=True))}))
        every = config.steps // len(losses)
        rows = [{"step": every * (i + 1), "loss": loss, "sec_per_step": 0.1 * (i + 1)} for i, loss in enumerate(losses)]
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

    assert script.main(["--scales", "16", "--seeds", "1", "--steps", "250", "--out", str(out)]) == 0  # read
    assert len(trained) == 2


def test_a_run_is_continued_to_more_steps_never_cut_short(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("feedback_scale")
    monkeypatch.setattr(script, "WORKDIRS", tmp_path / "workdirs")
    trained = []
    monkeypatch.setattr(script, "meta_train", fake_meta_train([1.6, 1.4], (0.5, 0.4, 0.3), trained))
    out = tmp_path / "out"
    assert script.main(["--scales", "16", "--seeds", "0", "--steps", "100", "--out", str(out)]) == 0
    assert script.main(["--scales", "16", "--seeds", "0", "--steps", "300", "--out", str(out)]) == 0
    assert [c.steps for c in trained] == [100, 300]  # the same workdir, continued
    rows = json.loads((out / "feedback_scale.json").read_text())
    assert [(r["steps"], r["left_chance_at"]) for r in rows] == [(100, 100), (300, 300)]  # one row per length
    with pytest.raises(ValueError, match="at step 300, beyond --steps 100"):
        script.main(["--scales", "16", "--seeds", "0", "--steps", "100", "--out", str(out)])


def test_split_mnist_meta_finetuning_and_its_spread_over_seeds(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("feedback_scale")
    monkeypatch.setattr(script, "WORKDIRS", tmp_path / "workdirs")
    trained = []
    monkeypatch.setattr(script, "meta_train", fake_meta_train([1.6, 1.4], (0.9, 0.8, 0.7), trained))
    acc = {"0": (80.0, 1.0), "1": (84.0, 2.0)}  # by the seed that ends the Split-MNIST workdir's glyph run name

    def fake_stream_accuracy(model, stream, runs):
        assert (stream, runs) == ("split_mnist_domain", 3)
        mean, std = acc[model.split("_seed")[1][0]]
        return {"model": model, "ACC": mean, "ACC eval std": std}

    monkeypatch.setattr(script, "stream_accuracy", fake_stream_accuracy)
    out = tmp_path / "out"
    assert script.main(["--config", "acl_glyphs_conv4", "--scales", "8", "--seeds", "0", "1", "--steps", "100",
                        "--split-mnist-steps", "40", "--runs", "3", "--out", str(out)]) == 0
    glyph_0, finetune_0, glyph_1, finetune_1 = trained
    assert (glyph_0.model.encoder, glyph_0.steps, finetune_0.steps) == ("conv4", 100, 40)
    assert finetune_0.model == glyph_0.model  # the glyph run's model, its feedback scale included
    assert (finetune_0.seed, finetune_1.seed, finetune_1.model.feedback_scale) == (0, 1, 8.0)
    assert finetune_1.init_from == str(tmp_path / "workdirs" / "acl_glyphs_conv4_scale8_seed1")
    assert finetune_0.pools[0].validation_dataset == "mnist"  # Split-MNIST, domain-IL: 5 tasks, labels {0, 1}
    assert [(t.n_way, t.label_offset) for t in finetune_0.tasks] == [(2, 0)] * 5
    table = (out / "feedback_scale.md").read_text()
    assert "| acl_glyphs_conv4 | 8 | 1 | 100 | 100 | 90.0 | 80.0 | 70.0 | 0.15 | 40 | 84.00 ± 2.00 |" in table
    assert "| acl_glyphs_conv4 | 8 | 100 + 40 | 0, 1 | 80.00 / 84.00 | 82.00 ± 2.00 | 1.50 |" in table

    with pytest.raises(SystemExit):  # no Split-MNIST recipe for this config
        script.main(["--config", "acl_glyphs_2task", "--split-mnist-steps", "40", "--out", str(out)])
    with pytest.raises(SystemExit):
        script.main(["--split-mnist-steps", "-5", "--out", str(out)])
    assert len(trained) == 4  # neither refused command trained anything
