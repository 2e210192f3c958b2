"""experiments/meta_training_seeds.py's tables: mean and std over meta-training seeds, worked by hand."""


def test_stream_table_rows_over_seeds(experiment_script):
    per_seed = [{"ACC": 70.0, "ACC eval std": 1.0}, {"ACC": 80.0, "ACC eval std": 2.0},
                {"ACC": 90.0, "ACC eval std": 6.0}]
    results = {"recipe a": {"5 tasks": per_seed, "20 tasks": per_seed[:2]},
               "recipe b": {"5 tasks": per_seed[1:], "20 tasks": per_seed[:1]},
               "recipe c": {"20 tasks": per_seed[2:]}}  # run on one stream only: no 5-task row
    lines = experiment_script("meta_training_seeds").stream_table(results, runs=10, caption="Caption.").splitlines()
    # population std of 70, 80, 90: sqrt(200 / 3) = 8.16; of 80, 90: 5; mean eval std (1 + 2 + 6) / 3 = 3
    assert lines[2:8] == ["| 5 tasks | recipe a | 3 | 70.00 / 80.00 / 90.00 | 80.00 ± 8.16 | 3.00 |",
                          "| 5 tasks | recipe b | 2 | 80.00 / 90.00 | 85.00 ± 5.00 | 4.00 |",
                          "| 20 tasks | recipe a | 2 | 70.00 / 80.00 | 75.00 ± 5.00 | 1.50 |",
                          "| 20 tasks | recipe b | 1 | 70.00 | 70.00 ± 0.00 | 1.00 |",
                          "| 20 tasks | recipe c | 1 | 90.00 | 90.00 ± 0.00 | 6.00 |", ""]
    assert lines[-1].startswith("Caption. Per-seed values") and "std over 10 evaluation runs" in lines[-1]
