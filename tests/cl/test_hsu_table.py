"""experiments/hsu_split_mnist.py end to end on a tiny stand-in for MNIST: the job, its report beside the published
numbers, and resuming."""

import json
from pathlib import Path

import numpy as np
import pytest

from acljax.cl.methods import Method
from acljax.data import ImageSet
from acljax.data.store import DATA_DIR_ENV, write_prepared


def _tiny_mnist(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)

    def split(n):
        return ImageSet(rng.integers(0, 256, (10 * n, 28, 28, 1), dtype=np.uint8),
                        np.repeat(np.arange(10), n).astype(np.int32))

    write_prepared("mnist", {"train": split(per_class), "validation": split(4), "test": split(4)}, {"source": "test"},
                   root=root)


def test_table_beside_the_published_numbers_and_resume(tmp_path, monkeypatch, capsys, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_mnist(tmp_path / "data", per_class=64)  # 2 digits x (64 + 4) examples: one batch of 128 per epoch
    script = experiment_script("hsu_split_mnist")
    job, out = tmp_path / "baselines", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    kwargs = dict(seeds=2, methods=["SGD"], scenarios=["task"])
    script.baselines(job, **kwargs)
    script.report({"baselines": job}, out)
    results = json.loads((out / "hsu_split_mnist.json").read_text())
    row = results["SGD/task"]
    assert row["seeds"] == 2 and row["config"]["optimizer"] == "sgd" and row["config"]["learning_rate"] == 0.01
    final = np.asarray(row["mean_matrix"])[-1]
    assert final.shape == (5,) and np.isclose(row["ACC"]["mean"], final.mean(), atol=1e-6)  # ACC: last row
    table = (out / "hsu_split_mnist.md").read_text()
    assert "| SGD | " in table and "| 97.98 |" in table  # Hsu et al.'s task-IL SGD, beside ours
    assert "| Naive rehearsal-C | - | 99.57 |" in table  # a method not run shows only the published number

    capsys.readouterr()
    script.baselines(job, **kwargs)  # finished with this configuration: kept, not run again, and said so
    assert "SGD/task: skipped, already in" in capsys.readouterr().out
    assert json.loads((job / "hsu_split_mnist.json").read_text())["SGD/task"] == row
    script.baselines(job, **kwargs, importance_samples=7)  # not a setting of SGD: still kept
    assert "SGD/task: skipped, already in" in capsys.readouterr().out
    monkeypatch.setitem(script.METHODS, "SGD", (Method(), {"optimizer": "sgd", "learning_rate": 0.02}))
    script.baselines(job, **kwargs)  # another configuration: run again
    assert json.loads((job / "hsu_split_mnist.json").read_text())["SGD/task"]["config"]["learning_rate"] == 0.02
    with pytest.raises(ValueError, match=r"methods: \['SDG'\] are not among \['Adam', 'SGD'"):
        script.baselines(job, methods=["SDG"])


def test_two_task_class_incremental_column(tmp_path, monkeypatch, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_mnist(tmp_path / "data", per_class=64)
    script = experiment_script("hsu_split_mnist")
    assert script.config_for("L2", "class2").method.strength == 2.0 * 100  # Hsu et al.'s class-IL L2 strength, doubled
    assert script.config_for("MAS", "task", importance_samples=7).method.importance_samples == 7
    out = tmp_path / "out"
    out.mkdir()
    script.baselines(out, seeds=1, methods=["Adam"], scenarios=["class2"])
    script.report({"baselines": out}, out)
    row = json.loads((out / "hsu_split_mnist.json").read_text())["Adam/class2"]
    matrix = np.asarray(row["mean_matrix"])
    assert matrix.shape == (2, 2)  # digits 0-3 in two tasks
    lines = (out / "hsu_split_mnist.md").read_text().splitlines()
    assert lines[0].endswith("| class-IL Hsu et al. | class-IL 2 tasks acljax |")  # no published column
    adam = next(line for line in lines if line.startswith("| Adam |")).split(" | ")
    ours = f"{100 * matrix[-1].mean():.2f} ± 0.00 (1) |"  # ACC: the last row's mean; one seed, no spread
    assert adam[-2:] == ["19.71", ours]  # Hsu et al.'s 5-task class-IL Adam, then ours
