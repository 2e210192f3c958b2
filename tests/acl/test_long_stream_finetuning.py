"""experiments/long_stream_finetuning.py: the evaluations its job asks for, and its table from stand-in result
files, every figure worked by hand."""

import json

import pytest


def test_the_job_evaluates_every_model_on_each_recorded_stream_and_the_longest_streams_draws(
        experiment_script, tmp_path, monkeypatch):
    script = experiment_script("long_stream_finetuning")
    asked = []
    monkeypatch.setattr(script, "evaluate_into", lambda out, model, stream, **kw: (
        asked.append((model, stream, kw["character_seed"], kw["runs"], kw["keep"])), _written(out, stream))[1])
    script.evaluate_models(tmp_path / "evaluations", draws=3, runs=2)
    models = {"glyphs_24task_acl",
              *(str(tmp_path / f"{prefix}_seed{seed}") for prefix in ("dropout", "no_dropout") for seed in (0, 1, 2))}
    expected = [("split_glyphs_domain5", 0), ("split_glyphs_domain10", 0), ("split_glyphs_domain20", 0),
                ("split_glyphs_domain20", 1), ("split_glyphs_domain20", 2)]
    assert sorted(asked) == sorted((m, s, seed, 2, True) for m in models for s, seed in expected)


def _written(out, stream):
    path = out / f"{stream}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": {"ACC": {"mean": 0.5, "std": 0.0}}}))
    return None, {"json": path}


def test_the_table_from_stand_in_result_files(experiment_script, tmp_path):
    from acljax.acl.in_context import evaluation_settings, result_name

    script = experiment_script("long_stream_finetuning")
    folder = tmp_path / "evaluations"
    folder.mkdir()
    longest = {"glyphs_24task_acl": (48, 44), "no_dropout_seed0": (49, 47), "no_dropout_seed1": (47, 46),
               "no_dropout_seed2": (48, 45)}  # ACC (%) on the 20-task stream, character draws 0 and 1
    for label, model in script.models(tmp_path).items():
        if label != "glyphs_24task_acl":
            (tmp_path / label).mkdir()
        acc = {("split_glyphs_domain5", 0): 80, ("split_glyphs_domain10", 0): 60}
        acc |= {("split_glyphs_domain20", d): v for d, v in enumerate(longest.get(label, longest["glyphs_24task_acl"]))}
        for (stream, seed), value in acc.items():
            name = result_name(evaluation_settings(model, stream, runs=10, shots=5, character_seed=seed))
            (folder / f"{name}.json").write_text(json.dumps({"summary": {"ACC": {"mean": value / 100, "std": 0.01}}}))
    lines = script.tables(script.accuracies(folder, 2, 10), 2).splitlines()
    # the recorded streams (draw 0): each model's ACC ± eval std; seeds 49, 47, 48 -> 48.0 ± sqrt(2/3)
    assert "| no_dropout_seed1 | 80.0 ± 1.0 | 60.0 ± 1.0 | 47.0 ± 1.0 |" in lines
    assert "| without dropout, mean ± std over 3 seeds | **80.0 ± 0.0** | **60.0 ± 0.0** | **48.0 ± 0.8** |" in lines
    # over draws 0 and 1: no_dropout_seed0 49, 47 -> 48.0; differences from the shipped 48, 44: 1, 3 -> mean 2,
    # standard error sqrt(2) / sqrt(2) = 1; seed1 47, 46: differences -1, 2 -> 0.5 ± 3 / sqrt(2) / sqrt(2)
    assert "| no_dropout_seed0 | 48.0 | +2.00 ± 1.00 |" in lines
    assert "| no_dropout_seed1 | 46.5 | +0.50 ± 1.50 |" in lines
    assert "| glyphs_24task_acl | 46.0 | - |" in lines
    # seeds: draw means 48, 46.5, 46.5 -> 47.0 ± sqrt(1/2); differences 2, 0.5, 0.5 -> 1.00 ± sqrt(1/2)
    assert "| without dropout, mean ± std over 3 seeds | **47.0 ± 0.7** | **+1.00 ± 0.71** |" in lines
    assert "| with dropout 0.1, mean ± std over 3 seeds | **46.0 ± 0.0** | **+0.00 ± 0.00** |" in lines
    assert "ranges 44.0-48.0 over the draws (std 2.0)" in lines[-1]
    with pytest.raises(ValueError, match="draws must be at least 2"):
        script.tables(script.accuracies(folder, 1, 10), 1)
