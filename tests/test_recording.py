"""Scripts' outputs: under runs/<script>/ by default, the tracked results/ folder only with --record."""

import argparse

import pytest

from acljax.recording import add_output_arguments, output_dir


def _parse(script, argv):
    parser = argparse.ArgumentParser()
    add_output_arguments(parser, script)
    return parser.parse_args(argv)


def test_scripts_never_write_into_the_checkout_unless_asked(tmp_path, monkeypatch):
    script = tmp_path / "checkout" / "benchmarks" / "speed.py"
    monkeypatch.chdir(tmp_path)
    assert output_dir(_parse(script, []), script) == tmp_path.joinpath("runs", "speed").relative_to(tmp_path)
    assert (tmp_path / "runs" / "speed").is_dir() and not (script.parent / "results").exists()
    assert output_dir(_parse(script, ["--out", "elsewhere"]), script).name == "elsewhere"
    assert output_dir(_parse(script, ["--record"]), script) == script.parent / "results"
    with pytest.raises(ValueError, match="either --record or --out"):
        output_dir(_parse(script, ["--record", "--out", "x"]), script)


def test_saved_rows_carry_the_command_and_date(tmp_path):
    import json
    import time

    from acljax.recording import save_rows

    script = tmp_path / "benchmarks" / "speed.py"
    out = save_rows([{"median_s": 1.5}], _parse(script, ["--out", str(tmp_path / "o")]), script, "rows.json",
                    ["--repeats", "3"])
    assert out == tmp_path / "o" / "rows.json"
    assert json.loads(out.read_text()) == [{"median_s": 1.5, "date": time.strftime("%Y-%m-%d"),
                                            "command": "speed.py --repeats 3"}]


def test_the_environment_names_code_versions_and_devices():
    import subprocess
    from importlib.metadata import version
    from pathlib import Path

    import jax
    import numpy as np

    from acljax.recording import environment

    env = environment()
    root = Path(__file__).parents[1]
    if (root / ".git").exists():  # the suite runs in a checkout (an installed acljax records None)
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert env["git_commit"] == head.stdout.strip()
    assert (env["jax"], env["numpy"], env["orbax"]) == (jax.__version__, np.__version__, version("orbax-checkpoint"))
    assert (env["flax"], env["optax"]) == (version("flax"), version("optax"))
    assert (env["device"], env["device_count"]) == (jax.devices()[0].device_kind, jax.device_count())


def test_the_cpu_model_is_read_from_cpuinfo(tmp_path):
    from acljax.recording import cpu_model

    (tmp_path / "cpuinfo").write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) "
                                      "Processor\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: Other\n")
    assert cpu_model(tmp_path / "cpuinfo") == "Intel(R) Xeon(R) Processor"
    assert cpu_model(tmp_path / "missing") is None
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # no model name line (some ARM kernels)
    assert cpu_model(tmp_path / "arm") is None
