"""One command for a GPU: the SRWM kernels checked against float64, their GPU layout swept, every implementation
measured at the paper's sizes, and one paper-config meta-training step per implementation.

    python benchmarks/gpu_check.py --record     # on a GPU machine: a few minutes on one H100 / H200
    python benchmarks/gpu_check.py --smoke      # anywhere: steps 1-3 at tiny sizes, scan and reversible in steps 1
                                                # and 3 (3: forward+backward only), the kernels in step 2

Steps, all in one JSON (``gpu_check_<platform>.json``, rewritten after each step, so a later failure keeps the
earlier steps) and one Markdown report beside it (``.md``, at the end), under ``runs/gpu_check/``
(``--record``: ``benchmarks/results/``):

1. **Kernels against float64.** Every implementation, each GPU kernel on its own (``pallas:triton``,
   ``pallas:mosaic_gpu``; one this GPU or JAX cannot compile is a failed row), against ``scan`` in float64 on odd
   shapes (d = 17, d_out != d, n_beta 1 and 4, T = 1, a prime T, bfloat16 inputs): outputs, final state and
   gradients. A row passes when its error is at most twice float32 ``scan``'s on the same case plus 1e-6 (float32
   rounding grows with T and differs by path; twice that is still far from any real mistake, which shows as errors of
   order 1).
2. **The GPU layout swept** as autotuning does (``acljax.srwm.autotune.sweep``): every candidate
   (``CANDIDATES``: Triton's lanes (heads) per program x warps, and the Mosaic GPU kernel), then the fastest at each
   chunk length of ``CHUNKS``, on the forward+backward at B=32, H=16, d=16, T=500, timed round-robin; the fastest of
   the last round is named.
3. **Throughput** at B=32, H=16, d=16, T=150 / 500 / 2000 (``srwm_throughput.bench_group``: min / median / max
   seconds, tokens/s, speed-up over ``scan``, error against float64, memory), each with its fraction of the
   device's FP32 peak (analytic FLOPs) and of a latency model's bound: a step of one head depends on the step
   before, so if a step takes ``LATENCY_FLOOR_S`` (an estimate, not a measurement) T steps take T times that
   whatever the parallelism (forward+backward: 3 T, the backward step being about twice the forward's work),
   and tokens/s are at most B / (steps per token x ``LATENCY_FLOOR_S``).
4. **One meta-training step** of the paper's config (``acl_glyphs_2task``: Conv-4, D = 256, 16 heads, batch
   32) per SRWM implementation (``benchmarks/meta_step.py --impls``).

Steps 1, 3 and 4 run the kernels with the untuned default layout (``ACLJAX_AUTOTUNE=0`` unless set): the library's
autotuning would sweep every layout per new shape first (``acljax.srwm.autotune``), which step 2 measures once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from acljax.recording import add_output_arguments, environment, output_dir
from acljax.srwm import autotune, init_state
from acljax.srwm.pallas import GPULayout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: benchmarks/ is a package beside it
from benchmarks import meta_step, srwm_throughput  # noqa: E402

IMPLS = srwm_throughput.GPU_IMPLS  # every implementation, the kernels once per GPU kernel
# (B, T, H, d, d_out, n_beta, dtype of x): the odd shapes every implementation must get right
CASES = {"d=17, d_out=5, n_beta=1, T=13 (prime)": (3, 13, 2, 17, 5, 1, "float32"),
         "d=16, n_beta=4, T=1": (2, 1, 4, 16, 16, 4, "float32"),
         "d=8, d_out=12, T=97 (prime, past one chunk)": (2, 97, 3, 8, 12, 4, "float32"),
         "bfloat16 inputs, d=16, T=31": (2, 31, 2, 16, 16, 4, "bfloat16")}
SMOKE_CASES = ("d=17, d_out=5, n_beta=1, T=13 (prime)",)
SMOKE_IMPLS = ("scan", "reversible")  # --smoke: off a GPU the kernels compile slowly in interpret mode (the tests
# check them against the reference); step 2 still runs them
SWEEP = autotune.CANDIDATES
SWEEP_SIZE = (32, 16, 16, 500)  # (B, H, d, T)
SIZES = srwm_throughput.PAPER_SIZES
SMOKE_SWEEP, SMOKE_CHUNKS, SMOKE_SIZE = [GPULayout(8, 4), GPULayout(1, 1)], (4,), (2, 2, 4, 16)
LATENCY_FLOOR_S = 0.2e-6  # one dependent step of one head, one warp with its state in registers (estimate)
FP32_PEAK_FLOPS = {"H100 PCIe": 51e12, "H100 NVL": 60e12, "H100": 67e12, "H200 NVL": 60e12, "H200": 67e12,
                   "A100": 19.5e12, "L40S": 91.6e12}  # NVIDIA's data sheets, non-tensor-core FP32


def fp32_peak(device_kind: str) -> float | None:
    """The FP32 (non-tensor-core) peak of a known NVIDIA device kind, else None (the first name it contains)."""
    return next((peak for name, peak in FP32_PEAK_FLOPS.items() if name in device_kind), None)


def check_case(name: str, impls) -> list[dict]:
    """Rows of step 1 for one case: each implementation's error against float64 scan, and whether it passes."""
    batch, steps, heads, d, d_out, n_beta, dtype = CASES[name]
    state = init_state(jax.random.key(0), heads, d, d_out=d_out, n_beta=n_beta, q_init_scale=1.0)
    state = jax.tree.map(lambda w: w + 0.1 * jax.random.normal(jax.random.key(2), (batch, *w.shape)), state)
    x = jax.random.normal(jax.random.key(1), (batch, steps, heads, d)).astype(dtype)

    def values(impl, state, x):  # outputs, final state and the gradients of a loss of both
        run, options = srwm_throughput.scan_options(impl, x.shape[0])

        def loss(state, x):
            y, final = run(state, x, **options)
            return jnp.sum(jnp.sin(y.astype(jnp.float32))) + sum(jnp.sum(jnp.cos(w)) for w in final)

        return jax.jit(lambda s, x: (run(s, x, **options), jax.grad(loss, (0, 1))(s, x)))(state, x)

    failed = {}
    for impl in impls:  # one that does not compile (a kernel this GPU or JAX cannot run) is a failed row
        try:
            jax.block_until_ready(values(impl, state, x))
        except Exception as error:  # noqa: BLE001
            failed[impl] = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    ran = [impl for impl in impls if impl not in failed]
    errors = srwm_throughput.errors_against_float64_scan(dict.fromkeys(("scan", *ran)), state, x, values)
    bound = 2 * errors["scan"] + 1e-6
    return [{"case": name, "impl": impl, "max_rel_error": errors[impl], "tolerance": bound,
             "passed": errors[impl] <= bound} if impl in errors else
            {"case": name, "impl": impl, "max_rel_error": None, "tolerance": bound, "passed": False,
             "error": failed[impl]} for impl in impls]


def time_layouts(layouts, chunks, batch, heads, d, steps, repeats) -> list[dict]:
    """Step 2: the forward+backward of ``"pallas"`` per GPU layout, then the fastest at each of ``chunks``
    (``acljax.srwm.autotune.sweep``, as the library's own autotuning measures them), one row each."""
    state = init_state(jax.random.key(0), heads, d)
    x = jax.random.normal(jax.random.key(1), (batch, steps, heads, d))
    rounds = autotune.sweep(state, x, repeats, candidates=layouts, chunks=chunks)
    return [{"round": number, **dataclasses.asdict(layout), "B": batch, "H": heads, "d": d, "T": steps,
             "min_s": min(t), "median_s": statistics.median(t), "max_s": max(t),
             "tokens_per_s": batch * steps / statistics.median(t)}
            for number, times in enumerate(rounds, 1) for layout, t in times.items()]


def add_fractions(rows: list[dict], device_kind: str) -> None:
    """Step 3's fractions of the FP32 peak and of the latency bound, on each timed row."""
    peak = fp32_peak(device_kind)
    for row in rows:
        if "tokens_per_s" not in row:
            continue
        steps_per_token = 3 if row["mode"] == "fwd+bwd" else 1
        row["latency_bound_tokens_per_s"] = row["B"] / (steps_per_token * LATENCY_FLOOR_S)
        row["of_latency_bound"] = row["tokens_per_s"] / row["latency_bound_tokens_per_s"]
        row["of_fp32_peak"] = row["achieved_flops"] / peak if peak else None


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# gpu_check on {env['device']} ({env['platform']}), jax {env['jax']}, commit "
             f"{(env.get('git_commit') or 'unknown')[:7]}{' (dirty)' if env.get('git_dirty') else ''}, "
             f"{report['date']}", "", f"`{report['command']}`, {report['seconds']:.0f} s", "",
             "## 1. Kernels against float64", "", "| case | impl | max rel. error | tolerance | passed |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['impl']} | "
              + (f"{r['max_rel_error']:.1e}" if r["max_rel_error"] is not None else f"failed: {r['error'][:80]}")
              + f" | {r['tolerance']:.1e} | {'yes' if r['passed'] else '**no**'} |" for r in report["checks"]]
    lines += ["", "## 2. GPU layout (pallas, forward+backward)", "",
              "| round | kernel | lanes per program | warps | chunk | s: min / median / max | tokens/s |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['round']} | {r['kernel']} | {r['lanes']} | {r['num_warps']} | {r['chunk'] or 'rule'} | "
              f"{r['min_s']:.4f} / {r['median_s']:.4f} / {r['max_s']:.4f} | {r['tokens_per_s']:,.0f} |"
              for r in report["layouts"]]
    best = report["best_layout"]
    lines += ["", f"Fastest (of the last round): {best['kernel']}, {best['lanes']} lanes per program, "
              f"{best['num_warps']} warps, chunk {best['chunk'] or 'by the anchor rule'}.", "",
              "## 3. Throughput", "", srwm_throughput.markdown(report["throughput"]), "",
              "| impl | mode | T | of FP32 peak | of the latency bound |", "|---|---|---|---|---|"]
    for r in report["throughput"]:
        if "of_latency_bound" in r:
            peak = f"{r['of_fp32_peak']:.2%}" if r["of_fp32_peak"] is not None else "- (unknown device)"
            lines.append(f"| {r['impl']} | {r['mode']} | {r['T']} | {peak} | {r['of_latency_bound']:.1%} |")
    if report["meta_step"]:
        lines += ["", "## 4. One meta-training step (acl_glyphs_2task, batch 32)", "",
                  "| SRWM impl | program | median s | sequences/s | XLA temp GiB |", "|---|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['program']} | {r['median_s']:.3f} | {r['sequences_per_s']:.1f} | "
                  f"{r['temp_gib']:.2f} |" for r in report["meta_step"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    os.environ.setdefault(autotune.SWITCH_VARIABLE, "0")  # see the module's docstring
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one case, two layouts, scan and reversible, "
                                                             "forward+backward throughput, no meta-training step")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    out = output_dir(args, __file__)
    start, env = time.perf_counter(), environment()
    name = f"gpu_check_{env['platform']}{'_smoke' if args.smoke else ''}"
    report = {"command": " ".join(["gpu_check.py", *(sys.argv[1:] if argv is None else argv)]),
              "date": time.strftime("%Y-%m-%d"), "environment": env}

    def save(**results):  # after every step: what was measured survives a later failure
        report.update(results, seconds=time.perf_counter() - start)
        (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")

    print(f"gpu_check on {env['device']} ({env['platform']}){' --smoke' if args.smoke else ''}", flush=True)
    impls = SMOKE_IMPLS if args.smoke else IMPLS
    checks = [row for case in (SMOKE_CASES if args.smoke else CASES) for row in check_case(case, impls)]
    save(checks=checks)
    print(f"1. kernels against float64: {sum(r['passed'] for r in checks)} of {len(checks)} passed", flush=True)
    batch, heads, d, steps = SMOKE_SIZE if args.smoke else SWEEP_SIZE
    layouts = time_layouts(*((SMOKE_SWEEP, SMOKE_CHUNKS) if args.smoke else (SWEEP, autotune.CHUNKS)), batch, heads,
                           d, steps, args.repeats)
    best = min((r for r in layouts if r["round"] == layouts[-1]["round"]), key=lambda r: r["median_s"])
    save(layouts=layouts, best_layout={key: best[key] for key in ("kernel", "lanes", "num_warps", "chunk")})
    print(f"2. fastest GPU layout: {best['kernel']}, {best['lanes']} lanes, {best['num_warps']} warps, chunk "
          f"{best['chunk'] or 'by the anchor rule'}", flush=True)
    throughput = []
    for size in ([SMOKE_SIZE] if args.smoke else SIZES):
        for backward in ((True,) if args.smoke else (False, True)):
            throughput += srwm_throughput.bench_group(impls, *size, backward, args.repeats)
    add_fractions(throughput, env["device"])
    save(throughput=throughput)
    print("3. throughput measured", flush=True)
    meta_rows = []
    if not args.smoke:
        meta_out = out / "meta_step"
        # "pallas" there is the default GPU kernel (default_gpu_layout: Mosaic GPU on Hopper and Blackwell)
        meta_step.main(["--impls", *srwm_throughput.IMPLS, "--out", str(meta_out)])
        meta_rows = json.loads((meta_out / f"meta_step_impls_{env['platform']}.json").read_text())
    save(meta_step=meta_rows)
    (out / f"{name}.md").write_text(markdown(report))
    print(markdown(report))
    print(f"-> {out / name}.json, .md")
    return 0 if all(r["passed"] for r in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
