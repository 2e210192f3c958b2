"""experiments/conv4_gpu.py: the declared runs, the table of runs from scratch (terms, the chance check, the
median step time), and evaluations kept until a model trains on."""

import json

from test_results import write_run

from acljax import experiment


def test_the_graph_declares_the_recipe(experiment_script, tmp_path):
    script = experiment_script("conv4_gpu")
    configs = script.EXPERIMENT.configs(tmp_path)
    assert len(configs) == 8 + 6 + 4 + 1  # glyph runs from scratch, Split-MNIST from them, seed 0's chain, class-IL
    d128 = configs["conv4_d128_seed2/glyphs_2task"]
    assert (d128.model.encoder, d128.model.num_features, d128.seed, d128.checkpoint_every) == ("conv4", 128, 2, 250)
    assert configs["conv4_d256_lr3e-4_seed1/glyphs_2task"].learning_rate == 3e-4
    domain = configs["conv4_d256_seed1/split_mnist_domain"]
    assert domain.init_from == str(tmp_path / "conv4_d256_seed1/glyphs_2task") and domain.seed == 1
    stage = configs["conv4_d256_seed0/glyphs_24task"]
    assert (len(stage.tasks), stage.model.num_features, stage.model.num_heads) == (24, 256, 16)
    assert stage.init_from == str(tmp_path / "conv4_d256_seed0/glyphs_16task")
    assert configs["conv4_d256_seed0/split_mnist_class_from24"].init_from == str(tmp_path / "conv4_d256_seed0/"
                                                                                           "glyphs_24task")


def test_runs_from_scratch_table(experiment_script, tmp_path):
    script = experiment_script("conv4_gpu")
    good = write_run(tmp_path / "good", (0.95, 0.80, 0.35), [0.3, 0.1, 0.2])
    stuck = write_run(tmp_path / "stuck", (0.21, 0.19, 0.20), [0.4, 0.1, 0.2, 0.3])
    rows = [script.run_row("v", 0, good), script.run_row("v", 1, stuck)]
    assert [r["learned"] for r in rows] == [True, False]  # every term above 30% (chance 20 + 10), or not
    assert rows[0]["A after A, B"] == 35.0 and rows[1]["sec_per_step"] == 0.25  # median of 0.1, 0.2, 0.3, 0.4
    lines = script.from_scratch_table(rows).splitlines()
    assert lines[2:4] == ["| v | 0 | 95.0 | 80.0 | 35.0 | yes | 0.200 |", "| v | 1 | 21.0 | 19.0 | 20.0 | no | 0.250 |"]


def test_recomputed_table_relative_difference(experiment_script):
    row = {"model": "runs/x", "loss GPU": 0.5, "loss here": 0.5001, "largest term accuracy difference": 0.078125}
    lines = experiment_script("conv4_gpu").recomputed_table([row]).splitlines()
    assert lines[2] == "| runs/x | 0.500000 | 0.500100 | 2.0e-04 | 0.08 points |"  # 0.0001 / 0.5


def test_evaluations_are_kept_until_the_best_step_changes(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("conv4_gpu")
    model = tmp_path / "m"
    model.mkdir()
    (model / "best.json").write_text(json.dumps({"step": 250}))
    evaluated = []
    monkeypatch.setattr(script, "SPLIT_MNIST", {"recipe": {"domain": ["m"]}})
    monkeypatch.setattr(script, "stream_accuracy",
                        lambda m, stream, runs: evaluated.append(stream) or {"ACC": 1.0, "ACC eval std": 0.0})
    first = script.split_mnist_results(script.evaluations({"m": model}, {}))
    assert evaluated == ["split_mnist_domain"] and first["recipe"]["domain-IL (5 tasks)"][0]["best_step"] == 250
    previous = {"split_mnist": first}  # as the report's JSON holds it
    assert script.split_mnist_results(script.evaluations({"m": model}, previous)) == first and len(evaluated) == 1
    (model / "best.json").write_text(json.dumps({"step": 500}))  # the model trained on
    script.split_mnist_results(script.evaluations({"m": model}, previous))
    assert len(evaluated) == 2


def test_the_report_from_stand_in_workdirs(experiment_script, tmp_path, monkeypatch):
    """Every declared workdir a stand-in: the report's tables hold their numbers (the meta-test recomputed here
    stubbed: it needs the models)."""
    script = experiment_script("conv4_gpu")
    for name in script.EXPERIMENT.configs(tmp_path):
        write_run(tmp_path / name, (0.9, 0.8, 0.7) if "d256_seed0" in name else (0.2, 0.2, 0.2), [0.5])
        (tmp_path / name / "best.json").write_text(json.dumps({"step": 100}))
    monkeypatch.setattr(script, "recomputed_here", lambda w: {"model": str(w), "loss GPU": 1.0, "loss here": 1.0,
                                                              "largest term accuracy difference": 0.0})
    acc = {"domain": 80.0, "class": 60.0, "class2": 90.0, "domain5": 70.0, "domain10": 50.0, "domain20": 40.0}
    monkeypatch.setattr(script, "stream_accuracy", lambda m, stream, runs: {
        "ACC": acc[stream.rsplit("_", 1)[1]] + (1.0 if "seed1" in str(m) else 0.0),
        "ACC eval std": 0.5})
    monkeypatch.setattr(experiment, "status", lambda config, workdir, moved_ok=False: ("done", config.steps))
    out = tmp_path / "report"
    experiment.report(script.EXPERIMENT, tmp_path, out)
    table = (out / "conv4_gpu.md").read_text()
    assert "| Conv-4, D = 256 (paper sizes), lr 1e-3 | 0 | 90.0 | 80.0 | 70.0 | yes | 0.500 |" in table
    assert "| Conv-4, D = 128 (quickstart sizes), lr 1e-3 | 1 | 20.0 | 20.0 | 20.0 | no | 0.500 |" in table
    # seeds 0, 1, 2: 80, 81, 80 -> mean 80.33, population std sqrt(2/9) = 0.47
    assert ("| domain-IL (5 tasks) | Conv-4 D = 256, from its 2-task glyph model | 3 | 80.00 / 81.00 / 80.00 | "
            "80.33 ± 0.47 | 0.50 |") in table
    assert "| class-IL (2 tasks) | Conv-4 D = 256, from its 24-task curriculum model | 1 | 90.00 |" in table
    assert "| 24 tasks | 70.0 ± 0.5 | 50.0 ± 0.5 | 40.0 ± 0.5 |" in table
