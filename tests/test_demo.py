"""The demo trainer: an SRWM model learns in-context recall; an interrupted run resumes exactly."""

import dataclasses
import json
import math
import shutil

import pytest

from acljax.cli import main
from acljax.configs import load as load_config
from acljax.demo import RecallDemoConfig, train

SMALL = RecallDemoConfig(num_keys=8, num_values=4, num_pairs=4, num_queries=4, num_features=64, num_heads=4,
                         batch_size=32, steps=250, log_every=25, checkpoint_every=125, eval_sequences=512)


def test_srwm_model_learns_in_context_recall(tmp_path):
    results = train(SMALL, tmp_path, show_progress=False)
    chance_loss = math.log(SMALL.num_values)  # uniform prediction over the values
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1
    assert results["eval_query_loss"] < 0.2 * min(first["loss"], chance_loss)
    assert results["eval_query_accuracy"] > 0.9  # chance is 0.25; the mapping is new in every sequence


def test_interrupted_run_resumes_with_the_same_numbers(tmp_path):
    config = dataclasses.replace(SMALL, steps=40, log_every=5, checkpoint_every=20, eval_sequences=64)
    straight = train(config, tmp_path / "a", show_progress=False)
    train(config, tmp_path / "b", show_progress=False)
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "40")  # as if killed after step 40 was logged but not saved
    resumed = train(config, tmp_path / "b", show_progress=False)
    assert resumed == straight
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == (tmp_path / "a" / "metrics.jsonl").read_text()


def test_cli_rejects_bad_steps(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--steps", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_a_demo_config_file_of_ones_own_is_what_the_demo_runs(tmp_path):
    """``acljax demo --config FILE.py`` runs FILE's get_config(): here a 3-step run whose log shows those steps."""
    (tmp_path / "mine.py").write_text("from acljax.demo import RecallDemoConfig\n\ndef get_config():\n    return "
                                      "RecallDemoConfig(num_features=16, num_heads=2, batch_size=4, steps=3, "
                                      "log_every=1, checkpoint_every=3, eval_sequences=4)\n")
    assert main(["demo", "--config", str(tmp_path / "mine.py"), "--workdir", str(tmp_path / "run")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="--config nowhere.py: neither a shipped config"):
        load_config("nowhere.py")


@pytest.mark.parametrize("field, value", [("learning_rate", float("nan")), ("learning_rate", -1.0),
                                          ("batch_size", 0)])
def test_bad_demo_config_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"RecallDemoConfig.{field} must be"):
        RecallDemoConfig(**{field: value})
