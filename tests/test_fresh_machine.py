"""The README's main command as a newcomer runs it: the installed ``acljax`` command, an empty data cache
(the glyph set is rendered and its statistics computed on first use), the shipped checkpoints."""

import json
import os

import pytest
from conftest import run_installed

from acljax.data.sources import FASHION_MNIST_DEBIAN

pytestmark = pytest.mark.xdist_group("fresh_machine")  # one worker renders the glyph set once


def test_quickstart_on_an_empty_cache(quickstart_on_empty_cache):
    done, data, workdir = quickstart_on_empty_cache
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((data / "glyphs" / "info.json").read_text())
    assert set(info["splits"]) == {"background", "evaluation"} and len(info["mean"]) == 1
    summary = json.loads((workdir / "summary.json").read_text())
    acl, no_acl = summary["test"]["ACL"], summary["test"]["no ACL"]
    # the paper's effect: both learn each task in context far above chance (20 %), and
    # without the ACL term task A falls towards chance once B is learned; with it, A survives
    for model in (acl, no_acl):
        assert model["acc/within_0"] > 0.8 and model["acc/within_1"] > 0.7
    assert acl["acc/backward_0_after_1"] > 0.7 and no_acl["acc/backward_0_after_1"] < 0.55
    assert "| ACL | " in done.stdout and "| no ACL | " in done.stdout
    for name in ("summary.md", "accuracy.png", "meta_training_terms.png", "pretraining_terms.png",
                 "fast_weights.png"):
        assert (workdir / name).stat().st_size > 0, name


def test_the_commands_run_the_installed_wheel_not_the_checkout(installed_acljax, tmp_path):
    import subprocess

    import acljax

    where = subprocess.run([str(installed_acljax / "python"), "-c", "import acljax; print(acljax.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed_acljax.parent)), where
    version = subprocess.run([str(installed_acljax / "acljax"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"acljax {acljax.__version__}"


def test_train_a_shipped_config_by_name_from_any_folder(installed_acljax, quickstart_on_empty_cache, tmp_path):
    _, fresh_cache, _ = quickstart_on_empty_cache  # the glyph set it rendered
    done = run_installed(installed_acljax, fresh_cache, tmp_path, "train", "--config", "acl_glyphs_quickstart",
                         "--smoke", "--set", "model.num_heads=4", "--workdir", "run")
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["num_heads"] == 4 and config["steps"] == 2
    assert set(json.loads((tmp_path / "run" / "results.json").read_text())) >= {"best_step", "test"}


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.exists() and not os.environ.get("CI"),
                    reason="needs dataset-fashion-mnist (bash scripts/setup.sh installs it as root)")
def test_eval_a_shipped_model_by_its_default_name_from_any_folder(installed_acljax, fresh_cache, tmp_path):
    done = run_installed(installed_acljax, fresh_cache, tmp_path, "eval", "--stream", "split_fashion_mnist_domain",
                         "--runs", "1", "--out", "results")
    assert done.returncode == 0, done.stderr[-3000:]
    name = "split_mnist_domain_acl__split_fashion_mnist_domain__5shot_1runs"
    saved = json.loads((tmp_path / "results" / f"{name}.json").read_text())
    assert "ACC" in json.dumps(saved)
