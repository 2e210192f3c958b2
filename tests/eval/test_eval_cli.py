"""`acljax eval` end to end: result files named by what decides the result, progress, the table's labels,
and the command with no arguments on a fresh machine."""

import contextlib
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
from conftest import run_installed

from acljax.cli import main

pytestmark = pytest.mark.xdist_group("fresh_machine")  # one worker renders the glyph set once


def _acljax(*args: str) -> tuple[int, str, str]:
    """``acljax ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(an untrained model's workdir named "model", a 4-class 8x8 .npz): 2 tasks of 2 classes in either layout.
    The model's best/ holds its initial parameters (written as acljax train does, without the training)."""
    from acljax.acl import ACLConfig, ModelConfig, PoolConfig
    from acljax.acl.trainer import MetaTrainer
    from acljax.data.episodes import TaskSpec
    from acljax.workdir import Workdir

    tmp = tmp_path_factory.mktemp("eval_cli")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 4).astype(np.int32)
    npz = tmp / "mine.npz"
    np.savez(npz, x=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8), y_test=y)
    config = ACLConfig(pools=(PoolConfig(dataset=str(npz), size=None, channels=None),), tasks=(TaskSpec(2, 1, 1),),
                       model=ModelConfig(encoder="mlp", num_classes=4, mlp_features=(8,), num_features=8, num_heads=2,
                                         hidden_features=8, dropout_rate=0.0, num_blocks=1))
    run = Workdir(tmp / "model")
    run.write_json("config.json", dataclasses.asdict(config))
    run.save_best(1, MetaTrainer(config, (8, 8, 1)).params, {"step": 1})
    return tmp / "model", npz


def test_evaluations_that_differ_never_share_a_result_file(tiny, tmp_path):
    model, npz = tiny
    out = tmp_path / "eval"
    common = ("eval", "--model", str(model), "--stream", str(npz), "--runs", "1", "--out", str(out))
    code, stdout, stderr = _acljax(*common, "--scenario", "domain", "--shots", "2")
    assert code == 0, stderr
    first = out / "model__mine__domain_2classes_2shot_1runs.json"
    saved = first.read_bytes()
    assert json.loads(saved)["settings"] == {"model": str(model.resolve()), "stream": str(npz.resolve()),
                                             "scenario": "domain", "classes_per_task": 2, "shots": 2, "runs": 1}
    # the table counts evaluation runs, and the 2 x 3 accuracy measurements show as a bar
    assert "| ACC | BWT | FWT | forgetting | runs |" in stdout and "| 1 |" in stdout
    assert "accuracy matrix: 100%" in stderr and "6/6" in stderr

    assert _acljax(*common, "--scenario", "class", "--shots", "2")[0] == 0
    assert _acljax(*common, "--scenario", "domain", "--shots", "1")[0] == 0
    assert sorted(p.name for p in out.glob("*.json")) == [
        "model__mine__class_2classes_2shot_1runs.json", "model__mine__domain_2classes_1shot_1runs.json",
        first.name]
    assert first.read_bytes() == saved  # the first evaluation's results are still its own
    assert json.loads((out / "model__mine__class_2classes_2shot_1runs.json").read_text())["settings"]["scenario"] \
        == "class"

    other = tmp_path / "elsewhere" / "model"  # another model of the same folder name: same file name, refused
    shutil.copytree(model, other)
    code, stdout, stderr = _acljax(*common[:2], str(other), *common[3:], "--scenario", "domain", "--shots", "2")
    assert code == 2 and stderr.count("\n") == 1 and stdout == ""
    assert stderr.startswith(f"acljax: error: {first} holds the results of another evaluation (model "
                             f"'{model.resolve()}' there, '{other.resolve()}' here); give another --out")
    assert first.read_bytes() == saved


def test_an_evaluation_already_saved_is_kept_when_asked(tiny, tmp_path, capsys):
    """``evaluate_into(keep=True)``, as the acl_in_context experiment's job resumes: the same evaluation is not run
    again; without ``keep`` it is (and replaces its own files)."""
    from acljax.acl.in_context import evaluate_into

    model, npz = tiny
    result, paths = evaluate_into(tmp_path, model, str(npz), runs=1, shots=2, keep=True, progress=False)
    saved = paths["json"].read_bytes()
    assert result is not None and json.loads(saved)["settings"]["shots"] == 2
    assert evaluate_into(tmp_path, model, str(npz), runs=1, shots=2, keep=True, progress=False)[0] is None
    assert paths["json"].read_bytes() == saved
    again, _ = evaluate_into(tmp_path, model, str(npz), runs=1, shots=2, progress=False)
    assert again is not None and np.array_equal(again.matrices, result.matrices)  # seeded: the same numbers
    capsys.readouterr()
    evaluate_into(tmp_path, model, str(npz), runs=1, shots=1, keep=True)  # other settings: evaluated, said so
    assert capsys.readouterr().out.startswith(f"Evaluating {model} on {npz}: in-context, 1 demos per class, 1 runs")


def test_more_shots_than_a_class_has_images_is_one_line_before_any_work(tiny, tmp_path):
    model, npz = tiny  # 4 training images of each class: task 0 holds classes 0 and 1, labels 0 and 1
    code, _, stderr = _acljax("eval", "--model", str(model), "--stream", str(npz), "--shots", "5", "--out",
                              str(tmp_path))
    assert code == 2 and stderr == (f"acljax: error: shots=5 demos per class: stream {npz}: task 0 (classes [0, 1]) "
                                    "has only 4 training images of label 0; give shots <= 4\n")
    assert not list(tmp_path.iterdir())


def test_a_character_seed_names_its_result_file_and_is_refused_outside_glyph_streams(tiny, tmp_path):
    from acljax.acl.in_context import evaluation_settings, result_name

    drawn = evaluation_settings("glyphs_24task_acl", "split_glyphs_domain20", runs=10, shots=5, character_seed=3)
    assert drawn == {"model": "glyphs_24task_acl", "stream": "split_glyphs_domain20", "character_seed": 3,
                     "shots": 5, "runs": 10}
    assert result_name(drawn) == "glyphs_24task_acl__split_glyphs_domain20__5shot_10runs_characters3"
    recorded = evaluation_settings("glyphs_24task_acl", "split_glyphs_domain20", runs=10, shots=5)
    assert result_name(recorded) == "glyphs_24task_acl__split_glyphs_domain20__5shot_10runs"  # as recorded before
    model, npz = tiny
    code, stdout, stderr = _acljax("eval", "--model", str(model), "--stream", str(npz), "--character-seed", "1",
                                   "--out", str(tmp_path / "eval"))
    assert code == 2 and stdout == "" and stderr == (
        "acljax: error: character_seed applies to split_glyphs_domainN streams only (they draw their characters), "
        f"got character_seed=1 with stream '{npz}'\n")
    assert not (tmp_path / "eval").exists()


def test_eval_with_no_arguments_on_a_fresh_machine(installed_acljax, quickstart_on_empty_cache, tmp_path):
    _, fresh_cache, _ = quickstart_on_empty_cache  # the glyph set it rendered (nothing is rendered twice)
    done = run_installed(installed_acljax, fresh_cache, tmp_path, "eval")
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((tmp_path / "runs" / "eval" / "glyphs_24task_acl__split_glyphs_domain5__5shot_10runs.json"
                        ).read_text())
    assert np.shape(saved["matrices"]) == (10, 5, 5)
    # in-context learning of 5-way tasks it never saw: every task, right after its demos, far above chance (20 %)
    assert np.diagonal(np.mean(saved["matrices"], 0)).min() > 0.5
    assert "| runs |" in done.stdout and "accuracy matrix: 100%" in done.stderr
