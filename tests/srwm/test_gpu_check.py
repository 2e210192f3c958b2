"""benchmarks/gpu_check.py: its smoke run end to end on this CPU (kernels in interpret mode), its pass rule
against a broken implementation, and its fractions against hand-computed ones."""

import json

import jax.numpy as jnp
import pytest
from conftest import ROOT

from acljax.configs import run_file
from acljax.srwm import api
from acljax.srwm.autotune import relative_error

gpu_check = run_file(ROOT / "benchmarks" / "gpu_check.py", "benchmarks/gpu_check.py")


def test_the_smoke_run_writes_every_step(tmp_path):
    assert gpu_check.main(["--smoke", "--repeats", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check_cpu_smoke.json").read_text())
    [checked] = [r for r in report["checks"] if r["impl"] == "reversible"]
    assert checked["passed"] and checked["max_rel_error"] <= checked["tolerance"]
    first, second = ([r for r in report["layouts"] if r["round"] == n] for n in (1, 2))
    assert len(first) == 2 and len(second) == 2  # two layouts; then the fastest at its default chunk and at 4
    best = {key: second[0][key] for key in ("kernel", "lanes", "num_warps")}
    assert best in [{key: r[key] for key in best} for r in first] and second[0]["chunk"] is None
    assert {key: second[1][key] for key in best} == best and second[1]["chunk"] == 4
    assert report["best_layout"] in [{key: r[key] for key in (*best, "chunk")} for r in second]
    rows = report["throughput"]
    assert {(r["impl"], r["mode"]) for r in rows} == {("scan", "fwd+bwd"), ("reversible", "fwd+bwd")}
    for r in rows:
        assert r["min_s"] <= r["steady_s"] <= r["max_s"] and r["max_rel_error"] < 1e-4
        assert r["of_fp32_peak"] is None  # a CPU has no entry in the table
    text = (tmp_path / "gpu_check_cpu_smoke.md").read_text()
    assert "## 1. Kernels against float64" in text and "## 3. Throughput" in text and "**no**" not in text


def test_a_wrong_implementation_fails_its_check(monkeypatch):
    def one_percent_off(state, x, **options):
        y, final = api.IMPLEMENTATIONS["scan"](state, x, input_softmax=options["input_softmax"],
                                               precision=options["precision"])
        return 1.01 * y, final

    monkeypatch.setitem(api.IMPLEMENTATIONS, "one_percent_off", one_percent_off)
    [row] = gpu_check.check_case(gpu_check.SMOKE_CASES[0], ["one_percent_off"])
    assert not row["passed"] and row["max_rel_error"] > 5e-3 > row["tolerance"]


def test_an_implementation_that_does_not_compile_is_a_failed_row_and_the_others_run(monkeypatch):
    def refuses(state, x, **options):
        raise NotImplementedError("not on this device")

    monkeypatch.setitem(api.IMPLEMENTATIONS, "refuses", refuses)
    rows = {r["impl"]: r for r in gpu_check.check_case(gpu_check.SMOKE_CASES[0], ["reversible", "refuses"])}
    assert rows["reversible"]["passed"] and not rows["refuses"]["passed"]
    assert rows["refuses"]["error"] == "NotImplementedError: not on this device"
    timed = gpu_check.srwm_throughput.bench_group(["scan", "refuses"], 2, 2, 4, 8, True, repeats=1)
    assert [r["impl"] for r in timed] == ["scan", "refuses"] and "steady_s" in timed[0]
    assert timed[1]["error"] == "NotImplementedError: not on this device" and "steady_s" not in timed[1]
    assert "| refuses | fwd+bwd | 2 | 2 | 4 | 8 | failed: NotImplementedError: not on this device |" in (
        gpu_check.srwm_throughput.markdown(timed))


def test_fractions_of_the_peak_and_of_the_latency_bound():
    row = {"mode": "fwd+bwd", "B": 32, "tokens_per_s": 10e6, "achieved_flops": 6.7e12}
    gpu_check.add_fractions([row], "NVIDIA H100 80GB HBM3")
    assert row["latency_bound_tokens_per_s"] == pytest.approx(32 / (3 * 0.2e-6))  # 53.3M tokens/s
    assert row["of_latency_bound"] == pytest.approx(10e6 / (32 / 0.6e-6)) == pytest.approx(0.1875)
    assert row["of_fp32_peak"] == pytest.approx(0.1)
    assert gpu_check.fp32_peak("NVIDIA H100 PCIe") == 51e12 and gpu_check.fp32_peak("cpu") is None


def test_the_relative_error_is_relative_to_the_largest_entry():
    got, truth = (jnp.array([1.0, 2.0]),), (jnp.array([1.0, 2.5]),)
    assert relative_error(got, truth) == pytest.approx(0.5 / 2.5)
