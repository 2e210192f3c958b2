"""`acljax cl`: any method on a custom .npz stream, the report written, settings through --set, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from acljax.cl import evaluate as cl_evaluate
from acljax.cl.evaluate import migrate_settings, sequential_report
from acljax.cl.methods import EWC, METHODS
from acljax.cl.trainer import SequentialConfig
from acljax.cli import main
from acljax.eval.report import claim


def test_gem_on_a_custom_npz_writes_the_report(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 40).astype(np.int32)
    images = rng.integers(0, 60, (len(y), 8, 8, 1), dtype=np.uint8)
    images[np.arange(len(y)), y, :, 0] += 180  # class c lights row c: learnable
    npz = tmp_path / "mine.npz"
    np.savez(npz, x=images, y=y, x_test=images, y_test=y)
    out = tmp_path / "cl"
    assert main(["cl", "--method", "gem", "--stream", str(npz), "--scenario", "class", "--seeds", "2",
                 "--set", "method.memory_size=30", "--set", "method.max_tasks=3", "--set", "batch_size=16",
                 "--set", "hidden=[32]", "--out", str(out)]) == 0
    report = json.loads((out / "gem__mine_class.json").read_text())  # method, stream and scenario in the name
    matrices = np.asarray(report["matrices"])
    assert matrices.shape == (2, 3, 3) and report["seeds"] == [0, 1]
    assert matrices[:, -1, 0].min() > 0.5  # GEM still knows task 0 after tasks 1 and 2 in class-IL
    assert (out / "gem__mine_class.png").exists() and "ACC" in capsys.readouterr().out
    assert not (out / "gem__mine_class_checkpoints").exists()  # kept only until the report is written
    assert main(["cl", "--method", "dgr", "--stream", str(npz), "--scenario", "class", "--seeds", "1",
                 "--set", "method.latent=4", "--set", "method.vae_hidden=[16]", "--set", "batch_size=16",
                 "--set", "hidden=[32]", "--set", "epochs=1", "--out", str(out)]) == 0
    assert "dgr__mine_class_samples.png" in capsys.readouterr().out  # the generator after each task, saved
    assert (out / "dgr__mine_class_samples.png").exists()


def _noise_npz(path, per_class):
    """4 classes of per_class random 4x4 images, the same in both splits."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), per_class).astype(np.int32)
    x = rng.integers(0, 255, (len(y), 4, 4, 1), dtype=np.uint8)
    np.savez(path, x=x, y=y, x_test=x, y_test=y)
    return path


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, capsys):
    npz = _noise_npz(tmp_path / "mine.npz", 32)
    out = tmp_path / "cl"
    common = ["cl", "--stream", str(npz), "--scenario", "class", "--seeds", "1", "--set", "batch_size=16",
              "--set", "hidden=[8]", "--set", "epochs=1", "--out", str(out)]
    # a run killed after its checkpoints were written: a stand-in, the same settings but 2 epochs
    sequential_report(SequentialConfig(batch_size=16, hidden=(8,), epochs=2), str(npz), seeds=1,
                      scenario="class", progress=False, workdir=out / "naive__mine_class_checkpoints")
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "holds a run with another configuration" in err and "config.epochs: 2 -> 1" in err
    assert main([*common[:-2], "--set", "epochs=2", "--out", str(out)]) == 0  # the same one: resumed, finished


def test_the_command_names_every_registered_method(capsys):
    with pytest.raises(SystemExit):
        main(["cl", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"one of {', '.join(METHODS)};" in help_text


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["cl", "--set", "stregth=3", "--out", str(tmp_path)]) == 2
    assert "SequentialConfig has no field 'stregth'" in capsys.readouterr().err
    assert main(["cl", "--method", "gemm", "--out", str(tmp_path)]) == 2
    assert "method must be one of ('naive', " in capsys.readouterr().err


def test_set_reaches_the_method_and_a_bad_method_setting_is_named(tmp_path, capsys, monkeypatch):
    built = []

    def stop(config, *args, **kwargs):  # the config that would train, taken before any work
        built.append(config)
        raise ValueError("stopped")

    monkeypatch.setattr(cl_evaluate, "sequential_report", stop)
    common = ["cl", "--method", "ewc", "--out", str(tmp_path)]
    assert main([*common, "--set", "method.strength=100", "--set", "method.fisher_estimator=argmax",
                 "--set", "learning_rate=1e-2"]) == 2
    assert built[0].method == EWC(strength=100.0, fisher_estimator="argmax") and built[0].learning_rate == 0.01
    for setting, says in [
            ("method.strenght=1", "--set 'method.strenght=1': EWC has no field 'strenght'; its fields: strength, "
                                  "importance_samples, fisher_estimator"),
            ("method.strength=-1", "--set 'method.strength=-1': EWC.strength must be a non-negative number"),
            ("method.importance_samples=many", "--set 'method.importance_samples=many': EWC.importance_samples must "
                                               "be a positive int or None (every example), got 'many'"),
            ("strength=100", "--set 'strength=100': strength is a setting of the method: --set method.strength=100")]:
        capsys.readouterr()
        assert main([*common, "--set", setting]) == 2
        assert says in capsys.readouterr().err
    assert len(built) == 1  # no bad setting got as far as the run
    capsys.readouterr()
    assert main(["cl", "--method", "rtf", "--out", str(tmp_path), "--set", "hidden=[100]"]) == 2
    assert ("--set 'hidden=[100]': RtF has its own hidden, and its own network does not use the training one: "
            "--set method.hidden=[100]") in capsys.readouterr().err
    assert len(built) == 1


OLD_SETTINGS = {  # a result file's settings as acljax recorded them before methods held their own fields
    "stream": "split_mnist_domain", "seeds": 1, "config": {
        "method": "ewc", "optimizer": "adam", "learning_rate": 0.001, "strength": 100.0, "gamma": 1.0, "xi": 0.1,
        "fisher_estimator": "argmax", "importance_samples": None, "reset_optimizer": False, "model": "mlp",
        "hidden": [8], "channels": [32, 32], "epochs": 1, "batch_size": 16, "num_devices": None,
        "memory_size": 1000, "memory_batch": 128, "buffer": "reservoir", "max_tasks": 10, "alpha": 0.2,
        "beta": 0.5, "margin": 0.5, "rank": 4, "bottleneck": 16, "routing": "task_id", "features": 64, "heads": 4,
        "latent": 100, "vae_hidden": [400, 400], "likelihood": "bernoulli", "temperature": 2.0}}


def test_settings_recorded_in_the_old_flat_form_are_read_as_today(tmp_path):
    config = SequentialConfig(method=EWC(strength=100.0, fisher_estimator="argmax"), hidden=(8,), epochs=1,
                              batch_size=16)
    assert migrate_settings(OLD_SETTINGS)["config"] == config.to_dict()
    assert SequentialConfig.from_dict(OLD_SETTINGS["config"]) == config
    (tmp_path / "ewc__split_mnist_domain.json").write_text(json.dumps({"settings": OLD_SETTINGS}))
    today = {**OLD_SETTINGS, "config": config.to_dict()}
    claim(tmp_path, "ewc__split_mnist_domain", today, migrate_settings)  # the same run: not refused
    with pytest.raises(ValueError, match="holds the results of another evaluation"):
        claim(tmp_path, "ewc__split_mnist_domain", {**today, "config": SequentialConfig(
            method=EWC(strength=10.0, fisher_estimator="argmax"), hidden=(8,), epochs=1, batch_size=16).to_dict()},
            migrate_settings)


@pytest.mark.parametrize("command", [None, "demo", "train", "eval", "quickstart", "data"])
def test_help_imports_no_jax(command):
    """``acljax --help`` and the help of every command but ``cl`` (which lists the methods) start in well under a
    second: the parser imports no JAX."""
    code = (f"import sys; from acljax.cli import build_parser; build_parser({command!r}); "
            "print('jax' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_result_file_of_another_run_is_never_replaced(tmp_path, capsys):
    npz = _noise_npz(tmp_path / "mine.npz", 16)
    out = tmp_path / "cl"
    common = ["cl", "--stream", str(npz), "--scenario", "class", "--set", "batch_size=16", "--set", "hidden=[8]",
              "--set", "epochs=1", "--out", str(out)]
    assert main([*common, "--seeds", "1"]) == 0
    first = (out / "naive__mine_class.json").read_text()
    capsys.readouterr()
    assert main([*common, "--seeds", "2"]) == 2  # other seeds: another result, refused before any work
    err = capsys.readouterr().err
    assert "naive__mine_class.json holds the results of another evaluation (seeds 1 there, 2 here)" in err
    assert main([*common, "--seeds", "1", "--set", "epochs=2"]) == 2
    assert "config" in capsys.readouterr().err
    assert (out / "naive__mine_class.json").read_text() == first
    assert main([*common, "--seeds", "1"]) == 0  # the same run again replaces its own file


def test_a_checkpoint_whose_config_was_stored_in_the_old_flat_form_resumes(tmp_path):
    npz = _noise_npz(tmp_path / "mine.npz", 32)
    workdir = tmp_path / "run"
    config = SequentialConfig(method=EWC(strength=100.0, fisher_estimator="argmax"), hidden=(8,), epochs=1,
                              batch_size=16)
    first = sequential_report(config, str(npz), seeds=1, scenario="class", progress=False, workdir=workdir)
    described = json.loads((workdir / "config.json").read_text())
    (workdir / "config.json").write_text(json.dumps({**described, "config": OLD_SETTINGS["config"]}))
    again = sequential_report(config, str(npz), seeds=1, scenario="class", progress=False, workdir=workdir)
    np.testing.assert_array_equal(again.matrices, first.matrices)
    changed = SequentialConfig(method=EWC(strength=10.0, fisher_estimator="argmax"), hidden=(8,), epochs=1,
                               batch_size=16)
    (workdir / "config.json").write_text(json.dumps({**described, "config": OLD_SETTINGS["config"]}))
    with pytest.raises(ValueError, match=r"another configuration \(config.method.strength: 100.0 -> 10.0\)"):
        sequential_report(changed, str(npz), seeds=1, scenario="class", progress=False, workdir=workdir)
