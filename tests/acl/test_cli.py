"""The `acljax` command: train and eval end to end on a tiny .npz data set, help, errors, output places."""

import dataclasses
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
                          hidden_features=8, dropout_rate=0.0, num_blocks=1),
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
    name = "run__mine__domain_2classes_2shot_2runs"  # the model, the stream and the settings
    report = json.loads((out / f"{name}.json").read_text())
    assert np.shape(report["matrices"]) == (2, 5, 5) and len(report["seeds"]) == 2
    assert (out / f"{name}.png").exists() and "ACC" in (out / f"{name}.md").read_text()


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


def _tiny_experiment(tmp_path):
    """A tiny .npz (10 classes of 6 8x8 images, test split too) and an experiment file training on it."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6).astype(np.int32)
    npz = tmp_path / "mine.npz"
    np.savez(npz, x=rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8), y_test=y)
    (tmp_path / "exp.py").write_text(CONFIG.format(npz=npz))
    return npz, str(tmp_path / "exp.py")


@pytest.mark.parametrize("args, expected", [
    (["--config", ""], "--config '': neither a shipped config ("),
    (["--config", "{returns_dict}"], "--config {returns_dict}: get_config() must return an ACLConfig (a dataclass "
                                     "instance), got dict"),
    (["--config", "{raises}"], "--config {raises}: get_config() failed: KeyError: 'size'"),
    (["--config", "{exp}", "--set", "model.mlp_features=()"], "--set 'model.mlp_features=()': ModelConfig.mlp_features "
                                                              "must be a non-empty sequence of positive ints"),
    (["--config", "{exp}", "--set", "model.mlp_features=[-5]"], "--set 'model.mlp_features=[-5]': ModelConfig."
                                                                "mlp_features must be a non-empty sequence of "
                                                                "positive ints"),
    (["--config", "{exp}", "--set", 'model.mlp_features=["a"]'], "--set 'model.mlp_features=[\"a\"]': ModelConfig."
                                                                 "mlp_features must be a tuple"),
    (["--config", "{exp}", "--set", "model.hidden_features=0"], "--set 'model.hidden_features=0': ModelConfig."
                                                                "hidden_features must be a positive int or None, "
                                                                "got 0"),
    (["--config", "{exp}", "--set", "model.conv_channels=0"], "--set 'model.conv_channels=0': ModelConfig."
                                                              "conv_channels must be a positive int, got 0"),
    (["--config", "{exp}", "--set", "batch_size=100000000000"], "batch_size=100000000000: the run needs at least "),
    (["--config", "{exp}", "--set", "validate_every=3", "--set", "checkpoint_every=3", "--set", "log_every=2"],
     "--set 'checkpoint_every=3' --set 'log_every=2': ACLConfig.checkpoint_every must be a multiple of log_every=2"),
    (["--config", "{exp}", "--workdir", "{a_file}"], "workdir {a_file}: a file, not a folder"),
])
def test_a_bad_train_setting_is_one_line_before_any_work(tmp_path, capsys, args, expected):
    _, exp = _tiny_experiment(tmp_path)
    files = {"returns_dict": "def get_config():\n    return {'steps': 2}\n",
             "raises": "def get_config():\n    return {}['size']\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    (tmp_path / "a_file").write_text("notes")
    names = {name: str(tmp_path / f"{name}.py") for name in files} | {"exp": exp, "a_file": str(tmp_path / "a_file")}
    run = tmp_path / "run"
    command = ["train", *[arg.format(**names) for arg in args]]
    assert main(command if "--workdir" in command else [*command, "--workdir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"acljax: error: {expected.format(**names)}") and err.count("\n") == 1, err
    assert not run.exists() and (tmp_path / "a_file").read_text() == "notes"


def test_a_negative_seed_is_refused_naming_it_before_the_workdir_is_made(tmp_path, capsys):
    _, exp = _tiny_experiment(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["train", "--config", exp, "--workdir", str(tmp_path / "run"), "--seed", "-1"])
    assert done.value.code == 2 and not (tmp_path / "run").exists()
    assert "argument --seed: must be an integer from 0 to 2**63 - 1, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("text, field", [
    ("{not json", "not a readable JSON config (Expecting property name"),
    ('{"extra": 1}', "the config has no field 'extra'"),
    ("[]", "the config must be a JSON object of ACLConfig's fields, got []"),
    ("saved without model", "the config has no 'model'"),
    ("learning_rate as text", "ACLConfig.learning_rate must be a number, got '0.001'"),
    ("size 10^5", "pools.0: PoolConfig.size must be None (as stored) or an int from 4 to 1024"),
])
def test_eval_of_a_model_with_a_crafted_config_json_is_one_line_naming_the_file(tmp_path, capsys, text, field):
    from acljax.acl import ACLConfig

    npz, _ = _tiny_experiment(tmp_path)
    saved = json.loads(json.dumps(dataclasses.asdict(ACLConfig())))
    if text == "saved without model":
        del saved["model"]
    elif text == "learning_rate as text":
        saved["learning_rate"] = "0.001"
    elif text == "size 10^5":
        saved["pools"][0]["size"] = 10 ** 5
    model = tmp_path / "model"
    (model / "best").mkdir(parents=True)
    (model / "config.json").write_text(text if text[0] in "{[" else json.dumps(saved))
    assert main(["eval", "--model", str(model), "--stream", str(npz), "--runs", "1", "--shots", "1",
                 "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"acljax: error: {model / 'config.json'}: {field}") and err.count("\n") == 1, err
