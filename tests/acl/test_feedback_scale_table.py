"""experiments/feedback_scale.py: the runs it declares, when a run left chance, the table and the spread of the
Split-MNIST meta-finetuning over seeds, from stand-in workdirs."""

import json

import pytest

from acljax.results import TERMS


def write_glyph_run(path, losses, terms, steps):
    """A finished workdir: the losses logged at evenly spaced steps up to ``steps``, a validation row between."""
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"test": dict(zip(TERMS.values(), terms, strict=True))}))
    every = steps // len(losses)
    rows = [{"step": every * (i + 1), "loss": loss, "sec_per_step": 0.1 * (i + 1)} for i, loss in enumerate(losses)]
    rows.insert(2, {"step": 100, "valid/loss": 1.0})  # validation rows have no training loss
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_declared_runs_and_their_split_mnist_meta_finetuning(experiment_script, tmp_path):
    script = experiment_script("feedback_scale")
    configs = script.EXPERIMENT.configs(tmp_path)
    assert len(configs) == 9 * 2 + 1  # 9 glyph runs with Split-MNIST, the Conv-4 scale-1 run without
    glyph = configs["acl_glyphs_conv4_scale11.3137_seed2"]
    assert (glyph.model.encoder, glyph.model.feedback_scale, glyph.seed, glyph.steps) == ("conv4", 11.3137, 2, 2000)
    finetune = configs["acl_glyphs_conv4_scale11.3137_seed2_at2000_split_mnist_domain500"]
    assert finetune.model == glyph.model and (finetune.seed, finetune.steps) == (2, 500)
    assert finetune.init_from == str(tmp_path / "acl_glyphs_conv4_scale11.3137_seed2")
    assert finetune.pools[0].validation_dataset == "mnist"  # Split-MNIST, domain-IL: 5 tasks, labels {0, 1}
    assert [(t.n_way, t.label_offset) for t in finetune.tasks] == [(2, 0)] * 5
    assert configs["acl_glyphs_quickstart_scale16_seed0"].model.feedback_scale == 16.0
    assert configs["acl_glyphs_conv4_scale1_seed1"].steps == 1000


def test_left_chance_table_and_spread_over_seeds(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("feedback_scale")
    monkeypatch.setattr(script, "GLYPH_RUNS", (("acl_glyphs_conv4", 8.0, 0, 250, True),
                                               ("acl_glyphs_conv4", 8.0, 1, 250, True),
                                               ("acl_glyphs_quickstart", 1.0, 1, 250, False)))
    write_glyph_run(tmp_path / "acl_glyphs_conv4_scale8_seed0", [1.7, 1.61, 1.52, 1.49, 1.2], (0.9, 0.8, 0.7), 250)
    write_glyph_run(tmp_path / "acl_glyphs_conv4_scale8_seed1", [1.6, 1.4], (0.5, 0.4, 0.3), 250)
    write_glyph_run(tmp_path / "acl_glyphs_quickstart_scale1_seed1", [1.7, 1.61, 1.6, 1.6, 1.6], (0.2,) * 3, 250)
    acc = {"0": (80.0, 1.0), "1": (84.0, 2.0)}  # by the seed in the Split-MNIST workdir's name

    def fake_stream_accuracy(model, stream, runs):
        assert (stream, runs) == ("split_mnist_domain", 10) and model.name.endswith("_at250_split_mnist_domain500")
        mean, std = acc[model.name.split("_seed")[1][0]]
        return {"ACC": mean, "ACC eval std": std}

    monkeypatch.setattr(script, "stream_accuracy", fake_stream_accuracy)
    workdirs = {name: tmp_path / name for name in ["acl_glyphs_conv4_scale8_seed0", "acl_glyphs_conv4_scale8_seed1",
                                                   "acl_glyphs_quickstart_scale1_seed1"]}
    workdirs |= {f"{name}_at250_split_mnist_domain500": tmp_path / f"{name}_at250_split_mnist_domain500"
                 for name in list(workdirs)[:2]}
    out = tmp_path / "out"
    out.mkdir()
    script.report(workdirs, out)
    rows = json.loads((out / "feedback_scale.json").read_text())
    assert [(r["config"], r["seed"], r["left_chance_at"]) for r in rows] == [
        ("acl_glyphs_conv4", 0, 200), ("acl_glyphs_conv4", 1, 250), ("acl_glyphs_quickstart", 1, None)]
    assert rows[0]["sec_per_step"] == pytest.approx(0.3)  # median of 0.1 .. 0.5
    table = (out / "feedback_scale.md").read_text()
    # the first loss below 1.5: 1.49 at step 200; never: "-"
    assert "| acl_glyphs_conv4 | 8 | 0 | 250 | 200 | 90.0 | 80.0 | 70.0 | 0.30 | 500 | 80.00 ± 1.00 |" in table
    assert "| acl_glyphs_quickstart | 1 | 1 | 250 | - | 20.0 | 20.0 | 20.0 | 0.30 | - | - |" in table
    assert "| acl_glyphs_conv4 | 8 | 250 + 500 | 0, 1 | 80.00 / 84.00 | 82.00 ± 2.00 | 1.50 |" in table
