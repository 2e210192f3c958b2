"""experiments/conv4_gpu.py's table of runs from scratch: terms, the chance check and the median step time."""

import json


def write_run(path, terms, seconds):
    path.mkdir()
    keys = ("acc/within_0", "acc/within_1", "acc/backward_0_after_1")
    (path / "results.json").write_text(json.dumps({"test": dict(zip(keys, terms, strict=True))}))
    rows = [{"step": 50 * (i + 1), "loss": 1.0, "sec_per_step": s} for i, s in enumerate(seconds)]
    rows.insert(1, {"step": 50, "valid/loss": 1.0})  # validation rows carry no step time
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_runs_from_scratch_table(experiment_script, tmp_path):
    script = experiment_script("conv4_gpu")
    write_run(tmp_path / "good", (0.95, 0.80, 0.35), [0.3, 0.1, 0.2])
    write_run(tmp_path / "stuck", (0.21, 0.19, 0.20), [0.4, 0.1, 0.2, 0.3])
    rows = [script.run_row("v", 0, str(tmp_path / "good")), script.run_row("v", 1, str(tmp_path / "stuck"))]
    assert [r["learned"] for r in rows] == [True, False]  # every term above 30% (chance 20 + 10), or not
    assert rows[0]["A after A, B"] == 35.0 and rows[1]["sec_per_step"] == 0.25  # median of 0.1, 0.2, 0.3, 0.4
    lines = script.from_scratch_table(rows).splitlines()
    assert lines[2:4] == ["| v | 0 | 95.0 | 80.0 | 35.0 | yes | 0.200 |", "| v | 1 | 21.0 | 19.0 | 20.0 | no | 0.250 |"]


def test_recomputed_table_relative_difference(experiment_script):
    row = {"model": "runs/x", "loss GPU": 0.5, "loss here": 0.5001, "largest term accuracy difference": 0.078125}
    lines = experiment_script("conv4_gpu").recomputed_table([row]).splitlines()
    assert lines[2] == "| runs/x | 0.500000 | 0.500100 | 2.0e-04 | 0.08 points |"  # 0.0001 / 0.5


def test_split_mnist_entries_are_kept_until_the_best_step_changes(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("conv4_gpu")
    model = tmp_path / "m"
    model.mkdir()
    (model / "best.json").write_text(json.dumps({"step": 250}))
    evaluated = []
    monkeypatch.setattr(script, "SPLIT_MNIST", {"recipe": {"domain": [str(model)]}})
    monkeypatch.setattr(script, "stream_accuracy",
                        lambda m, stream, runs: evaluated.append(stream) or {"model": m, "ACC": 1.0})
    first = script.split_mnist_results({}, runs=3)
    assert evaluated == ["split_mnist_domain"] and first["recipe"]["domain-IL (5 tasks)"][0]["best_step"] == 250
    assert script.split_mnist_results(first, runs=3) == first and len(evaluated) == 1  # kept
    script.split_mnist_results(first, runs=4)  # another run count
    (model / "best.json").write_text(json.dumps({"step": 500}))  # the model trained on
    script.split_mnist_results(first, runs=3)
    assert len(evaluated) == 3
