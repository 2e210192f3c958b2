"""experiments/isolation_split_mnist.py end to end on a tiny stand-in for MNIST: rows, BWT, added parameters."""

import json

from test_hsu_table import _tiny_mnist

from acljax.data.store import DATA_DIR_ENV


def test_isolation_table_and_resume(tmp_path, monkeypatch, capsys, experiment_script):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    _tiny_mnist(tmp_path / "data", per_class=64)
    script = experiment_script("isolation_split_mnist")
    out = tmp_path / "out"
    out.mkdir()
    kwargs = dict(seeds=2, rows=["LoRA r=8", "Experts, confidence"], scenarios=["task", "domain"])
    script.methods(out, **kwargs)
    script.report({"methods": out}, out)
    results = json.loads((out / "isolation_split_mnist.json").read_text())
    assert set(results) == {"LoRA r=8/task", "Experts, confidence/task", "Experts, confidence/domain"}  # LoRA: task-IL
    assert abs(results["LoRA r=8/task"]["BWT"]["mean"]) == 0.0  # a frozen network and per-task deltas forget nothing
    table = (out / "isolation_split_mnist.md").read_text()
    assert "| LoRA r=8 | " in table and "| 19,152 | 76,608 (16%) |" in table  # 8 x (784+400 + 400+400 + 400+10)
    capsys.readouterr()
    script.methods(out, **kwargs)
    assert "LoRA r=8/task: skipped" in capsys.readouterr().out
