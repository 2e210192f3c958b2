"""`acljax train` and `acljax eval` end to end on a tiny .npz data set."""

import json

import numpy as np

from acljax.cli import main

CONFIG = '''
from acljax.acl import ACLConfig, ModelConfig, PoolConfig
from acljax.data.episodes import TaskSpec

def get_config():
    return ACLConfig(
        pools=(PoolConfig(dataset="{npz}", split="train", size=None, channels=None, validation_fraction=0.4,
                          test_split="test"),),
        tasks=(TaskSpec(2, 2, 2), TaskSpec(2, 2, 2)),
        model=ModelConfig(encoder="mlp", num_classes=4, mlp_features=(8,), num_features=8, num_heads=2,
                          hidden_features=8, dropout_rate=0.0),
        batch_size=2, steps=2, log_every=1, validate_every=2, validation_batches=1, test_batches=1)
'''


def test_train_then_eval_a_custom_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6).astype(np.int32)
    npz = tmp_path / "mine.npz"
    np.savez(npz, x=rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8), y_test=y)
    config = tmp_path / "exp.py"
    config.write_text(CONFIG.format(npz=npz))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--workdir", str(run), "--no-acl"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["use_acl"] is False and saved["steps"] == 2
    assert "| backward_0_after_1 |" in capsys.readouterr().out

    out = tmp_path / "eval"
    assert main(["eval", "--model", str(run), "--stream", str(npz), "--runs", "2", "--shots", "2",
                 "--classes-per-task", "2", "--scenario", "domain", "--out", str(out)]) == 0
    report = json.loads((out / "mine.json").read_text())
    assert np.shape(report["matrices"]) == (2, 5, 5) and len(report["seeds"]) == 2
    assert (out / "mine.png").exists() and "ACC" in (out / "mine.md").read_text()


def test_eval_of_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "nothing"), "--stream", "split_mnist_domain"]) == 2
    assert "no config.json" in capsys.readouterr().err
