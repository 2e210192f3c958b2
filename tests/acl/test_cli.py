"""The `acljax` command: train and eval end to end on a tiny .npz data set, help, errors, output places."""

import json
import subprocess
import sys

import numpy as np
import pytest

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
    report = json.loads((out / "run__mine.json").read_text())  # named after the model and the stream
    assert np.shape(report["matrices"]) == (2, 5, 5) and len(report["seeds"]) == 2
    assert (out / "run__mine.png").exists() and "ACC" in (out / "run__mine.md").read_text()


def test_eval_of_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "nothing"), "--stream", "split_mnist_domain"]) == 2
    err = capsys.readouterr().err
    assert "nothing: neither a workdir nor a shipped model (" in err and "glyphs_2task_acl, " in err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--model", str(tmp_path / "empty"), "--stream", "split_mnist_domain"]) == 2
    assert "empty: no config.json" in capsys.readouterr().err


def test_version_and_help_show_what_a_newcomer_needs(capsys):
    import acljax

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"acljax {acljax.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out  # no reStructuredText shown literally
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in help_text and "(default: runs/eval)" in help_text
    with pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--workdir WORKDIR both models' runs" in help_text and "(default: 300)" in help_text


def test_distributed_without_a_cluster_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "acljax.cli", "train", "--config", "acl_glyphs_quickstart",
                           "--workdir", str(tmp_path / "run"), "--distributed"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("acljax: error: --distributed: ")
    assert "--coordinator HOST:PORT" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_data_show_writes_under_runs_not_into_the_current_folder(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "toy.npz", x=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8), y=np.arange(12) % 3)
    assert main(["data", "prepare", "toy", "--from", str(tmp_path / "toy.npz")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["data", "show", "toy"]) == 0
    assert (tmp_path / "runs" / "data" / "toy_train_contact_sheet.png").is_file()
    assert not list(tmp_path.glob("*.png"))


def test_config_and_output_errors_are_one_line(tmp_path, capsys):
    config = tmp_path / "typo.py"
    config.write_text("from acljax.acl import ACLConfig\n\ndef get_config():\n    return ACLConfig(stpes=3)\n")
    assert main(["train", "--config", str(config), "--workdir", str(tmp_path / "run")]) == 2
    assert "get_config() failed: ACLConfig.__init__() got an unexpected keyword argument 'stpes'" in \
        capsys.readouterr().err
    (tmp_path / "a_file").write_text("")
    assert main(["eval", "--model", "split_mnist_domain_acl", "--out", str(tmp_path / "a_file" / "x")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_only_process_0_of_a_multi_host_run_prints(tmp_path, monkeypatch, capsys):
    import sys

    import jax

    import acljax.acl

    summary = {"best_step": 2, "best_validation": {"loss": 1.0, "loss/within_0": 1.0, "acc/within_0": 0.5}}
    monkeypatch.setattr(acljax.acl, "meta_train", lambda *args, **kwargs: summary)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test, whatever the command does to it
    (tmp_path / "exp.py").write_text(CONFIG.format(npz=tmp_path / "unused.npz"))
    command = ["train", "--config", str(tmp_path / "exp.py"), "--workdir", str(tmp_path / "run")]
    assert main(command) == 0
    assert "| A after A | within_0 |" in capsys.readouterr().out  # process 0 reports
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert main(command) == 0
    assert capsys.readouterr().out == ""  # any other process stays quiet
