"""acljax.results: a model's terms and step time read from its workdir, and the report tables, worked by hand."""

import json

from acljax import results


def write_run(path, terms, seconds):
    """A workdir as ``acljax train`` leaves it: the meta-test in results.json, training and validation rows."""
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"test": dict(zip(results.TERMS.values(), terms, strict=True))}))
    rows = [{"step": 50 * (i + 1), "loss": 1.0, "sec_per_step": s} for i, s in enumerate(seconds)]
    rows.insert(1, {"step": 50, "valid/loss": 1.0})  # validation rows carry no step time
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_terms_and_median_step_time_from_a_workdir(tmp_path):
    run = write_run(tmp_path / "run", (0.95, 0.80, 0.35), [0.4, 0.1, 0.2, 0.3])
    assert results.meta_test_terms(run) == {"A after A": 95.0, "B after A, B": 80.0, "A after A, B": 35.0}
    assert [r["step"] for r in results.training_rows(run)] == [50, 100, 150, 200]  # the validation row left out
    assert results.median_step_seconds(run) == 0.25  # median of 0.1, 0.2, 0.3, 0.4


def test_accuracy_table_by_hand():
    acc = {"a": {"s5": {"ACC": 50.0, "ACC eval std": 1.0}}, "b": {"s5": {"ACC": 60.0, "ACC eval std": 2.04}}}
    assert results.accuracy_table(acc, ["s5"], {"both": ["a", "b"]}, fixed_rows=("| paper | 92.3 |",)) == (
        "| model | s5 |\n|---|---|\n| paper | 92.3 |\n| a | 50.0 ± 1.0 |\n| b | 60.0 ± 2.0 |\n"
        "| both | **55.0 ± 5.0** |")  # population std of 50 and 60: 5


def test_seeds_table_rows_over_seeds():
    per_seed = [{"ACC": 70.0, "ACC eval std": 1.0}, {"ACC": 80.0, "ACC eval std": 2.0},
                {"ACC": 90.0, "ACC eval std": 6.0}]
    table = {"recipe a": {"5 tasks": per_seed, "20 tasks": per_seed[:2]},
             "recipe b": {"5 tasks": per_seed[1:], "20 tasks": per_seed[:1]},
             "recipe c": {"20 tasks": per_seed[2:]}}  # run on one stream only: no 5-task row
    lines = results.seeds_table(table, runs=10, caption="Caption.").splitlines()
    # population std of 70, 80, 90: sqrt(200 / 3) = 8.16; of 80, 90: 5; mean eval std (1 + 2 + 6) / 3 = 3
    assert lines[2:8] == ["| 5 tasks | recipe a | 3 | 70.00 / 80.00 / 90.00 | 80.00 ± 8.16 | 3.00 |",
                          "| 5 tasks | recipe b | 2 | 80.00 / 90.00 | 85.00 ± 5.00 | 4.00 |",
                          "| 20 tasks | recipe a | 2 | 70.00 / 80.00 | 75.00 ± 5.00 | 1.50 |",
                          "| 20 tasks | recipe b | 1 | 70.00 | 70.00 ± 0.00 | 1.00 |",
                          "| 20 tasks | recipe c | 1 | 90.00 | 90.00 ± 0.00 | 6.00 |", ""]
    assert lines[-1].startswith("Caption. Per-seed values") and "std over 10 evaluation runs" in lines[-1]
