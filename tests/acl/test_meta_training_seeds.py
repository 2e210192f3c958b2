"""experiments/meta_training_seeds.py: the runs it declares (each seed's chain, the Split-MNIST recipes) and its
tables from stand-in workdirs, mean and std over seeds worked by hand."""


from test_results import write_run


def test_each_seed_chains_from_its_own_glyph_model(experiment_script, tmp_path):
    script = experiment_script("meta_training_seeds")
    configs = script.EXPERIMENT.configs(tmp_path)
    assert len(configs) == 2 * (2 + 4 + 2) + 2 * 6  # per seed 1, 2: the pair, 4 stages, 2 from 24; the 2-task recipes
    assert configs["glyphs_2task_no_acl_seed2"].use_acl is False and configs["glyphs_2task_acl_seed2"].use_acl
    assert configs["glyphs_4task_seed1"].init_from == str(tmp_path / "glyphs_2task_acl_seed1")
    assert configs["split_mnist_class_from24_seed2"].init_from == str(tmp_path / "glyphs_24task_seed2")
    assert configs["rot_split_mnist_domain_seed0"].init_from == "glyphs_2task_acl"  # seed 0: the shipped model
    assert configs["rot_split_mnist_domain_seed1"].pools[0].rotations
    assert not configs["split_mnist_domain_seed1"].pools[0].rotations
    assert {c.seed for n, c in configs.items() if n.endswith("seed2")} == {2}


def test_tables_over_seeds_from_stand_in_workdirs(experiment_script, tmp_path, monkeypatch):
    script = experiment_script("meta_training_seeds")
    workdirs = {name: tmp_path / name for name in script.EXPERIMENT.configs(tmp_path)}
    for seed, terms in ((1, (0.90, 0.80, 0.70)), (2, (0.94, 0.84, 0.76))):
        write_run(workdirs[f"glyphs_2task_acl_seed{seed}"], terms, [0.1])
        write_run(workdirs[f"glyphs_2task_no_acl_seed{seed}"], (0.95, 0.93, 0.40), [0.1])
    accuracy = {"glyphs_2task_acl": 60.0, "glyphs_2task_acl_seed1": 63.0, "glyphs_2task_acl_seed2": 66.0}
    monkeypatch.setattr(script, "stream_accuracy", lambda model, stream, runs: {
        "ACC": accuracy.get(str(model).rsplit("/", 1)[-1], 50.0), "ACC eval std": 3.0 if "seed" in str(model) else 0.0})
    shipped, read = {"A after A": 98.0, "B after A, B": 88.0, "A after A, B": 88.0}, script.meta_test_terms
    monkeypatch.setattr(script, "meta_test_terms", lambda model: shipped if isinstance(model, str) else read(model))
    out = tmp_path / "out"
    out.mkdir()
    script.report(workdirs, out)
    lines = (out / "meta_training_seeds.md").read_text().splitlines()
    # A after A over seeds 98, 90, 94: mean 94, population std sqrt(32/3) = 3.27; stream ACC 60, 63, 66: 63 ± 2.45;
    # mean eval std (0 + 3 + 3) / 3 = 2
    assert lines[2] == "| ACL | 3 | 94.0 ± 3.3 | 84.0 ± 3.3 | 78.0 ± 7.5 | 63.0 ± 2.4 | 2.0 |"
    assert lines[3] == "| no ACL | 3 | 96.0 ± 1.4 | 91.3 ± 2.4 | 56.0 ± 22.6 | 50.0 ± 0.0 | 2.0 |"
    assert any(line.startswith("| split_glyphs_domain20 | 24-task curriculum | 3 | 50.00 / 50.00 / 50.00 |")
               for line in lines)
    assert any(line.startswith("| class-IL (2 tasks) | from the 2-task model, rotations | 3 |") for line in lines)

