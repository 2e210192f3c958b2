"""`acljax cl` checks what it can before loading data or compiling: seeds that cannot fit in memory, settings, a
batch size no task can fill (the default one adapts); a run that fails before its first task leaves no folder."""

import json

import numpy as np
import pytest

import acljax.cl.evaluate as cl_evaluate
from acljax.cl.trainer import SequentialLearner
from acljax.cli import main


def write_npz(path, classes=4, per_class=20, side=4):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), per_class).astype(np.int32)
    x = rng.integers(0, 255, (len(y), side, side, 1), dtype=np.uint8)
    np.savez(path, x=x, y=y, x_test=x, y_test=y)
    return str(path)


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the stream's data fails the test: what is checked here is checked before."""
    def load(*args, **kwargs):
        raise AssertionError("the stream's data was loaded")

    monkeypatch.setattr(cl_evaluate, "build_stream", load)


def test_seeds_that_cannot_fit_are_refused_with_the_estimate_before_loading(tmp_path, capsys, monkeypatch,
                                                                             no_loading):
    npz = write_npz(tmp_path / "mine.npz")
    # one seed of the default MLP 16 -> 400 -> 400 -> 2 (domain-IL: 2 outputs) with Adam, batch 128 of 4x4x1:
    params = (16 * 400 + 400) + (400 * 400 + 400) + (400 * 2 + 2)
    per_seed = 4 * (params + params + 2 * params) + 4 + 128 * 16 * 4 + 128 * 4  # params, grads, mu & nu + count, batch
    monkeypatch.setattr(cl_evaluate, "available_memory", lambda: 1000 * per_seed + 5)
    out = tmp_path / "cl"
    assert main(["cl", "--stream", npz, "--seeds", "1001", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("acljax: error: seeds=1001: ")
    assert "give --seeds 1000 or fewer" in err
    assert not list(out.glob("*_checkpoints"))


@pytest.mark.parametrize("settings, says", [
    (["--set", "hidden=[0]"], "hidden must list positive layer widths"),
    (["--set", "channels=[]"], "channels must list one or more positive channel counts"),
    (["--method", "online_ewc", "--set", "method.gamma=-1"], "OnlineEWC.gamma must be in (0, 1]"),
])
def test_settings_are_checked_before_loading(tmp_path, capsys, no_loading, settings, says):
    assert main(["cl", "--stream", write_npz(tmp_path / "mine.npz"), *settings, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err


def test_a_batch_size_no_task_can_fill_is_refused_before_compiling_when_chosen(tmp_path, capsys, monkeypatch):
    npz = write_npz(tmp_path / "mine.npz")  # 2 classes of 20 examples per task: at most 40 per minibatch
    monkeypatch.setattr(SequentialLearner, "reset", lambda *args: pytest.fail("the learner was set up"))
    out = tmp_path / "cl"
    assert main(["cl", "--stream", npz, "--set", "batch_size=41", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "acljax: error: batch_size=41: task 0 (classes [0, 1])" in err and "give --set batch_size=40 or less" in err
    assert not (out / "naive__mine_domain_checkpoints").exists()


def test_a_listed_glyph_stream_works_with_the_defaults(tmp_path, capsys, monkeypatch):
    """split_glyphs_domain5 (10 training drawings per character, 5 characters per task: 50 < 128) on a small
    stand-in of the prepared glyph set."""
    root = tmp_path / "data"
    (root / "glyphs").mkdir(parents=True)
    y = np.repeat(np.arange(25), 20).astype(np.int32)
    x = np.random.default_rng(0).integers(0, 255, (len(y), 4, 4, 1), dtype=np.uint8)
    np.savez(root / "glyphs" / "evaluation.npz", x=x, y=y)
    split = {"num_examples": len(y), "num_classes": 25, "image_shape": [4, 4, 1]}
    (root / "glyphs" / "info.json").write_text(json.dumps({"name": "glyphs", "splits": {"evaluation": split},
                                                           "mean": [0.5], "std": [0.3]}))
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(root))
    out = tmp_path / "cl"
    assert main(["cl", "--method", "naive", "--stream", "split_glyphs_domain5", "--seeds", "1", "--set", "hidden=[8]",
                 "--set", "epochs=1", "--out", str(out)]) == 0
    err = capsys.readouterr().err  # the batch size the user did not choose shrinks to the smallest task's 5 x 10
    assert "batch_size 128 -> 50: task 0 (classes [" in err and "acljax cl: loading split_glyphs_domain5" in err
    assert np.asarray(json.loads((out / "naive__split_glyphs_domain5.json").read_text())["matrices"]).shape == (1, 5, 5)


@pytest.mark.parametrize("failing_task, folder_kept", [(0, False), (1, True)])
def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys, monkeypatch, failing_task,
                                                                    folder_kept):
    learn = SequentialLearner.learn

    def failing(self, index, task):
        if index == failing_task:
            raise ValueError(f"task {index} fails")
        return learn(self, index, task)

    monkeypatch.setattr(SequentialLearner, "learn", failing)
    out = tmp_path / "cl"
    assert main(["cl", "--stream", write_npz(tmp_path / "mine.npz"), "--seeds", "1", "--set", "hidden=[8]",
                 "--set", "epochs=1", "--out", str(out)]) == 2
    assert f"task {failing_task} fails" in capsys.readouterr().err
    assert (out / "naive__mine_domain_checkpoints").exists() == folder_kept  # after task 0: kept, to resume
