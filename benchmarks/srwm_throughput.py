"""SRWM throughput and memory: every implementation side by side, forward and forward+backward.

    python benchmarks/srwm_throughput.py            # the recorded CPU sweep
    python benchmarks/srwm_throughput.py --quick    # a small smoke sweep
    python benchmarks/srwm_throughput.py --long-sequence 20000   # process peak memory of one training step

Each row: compile seconds, seconds per call as min / median / max of --repeats timed runs after a warm-up
(``block_until_ready``; the implementations of one size are timed round-robin), tokens/s (B*T per second at the
median), the speed-up against ``scan`` of the same size and mode, achieved FLOP/s from an analytic count, the
largest error against ``scan`` in float64 (outputs and final state; forward+backward: the gradients; relative to
the largest entry), XLA's temporary memory and its peak estimate (temporaries + arguments + outputs,
``compiled.memory_analysis()``), device peak memory where the device reports it, and the device and versions.
On a CPU the sweep adds ``reversible_whole_batch``: ``reversible`` with the whole batch as one block instead of
its cache-sized default (``batch_block``), to show what the blocks gain. ``--baseline REV`` adds, for every
implementation, a row ``impl@COMMIT`` run by the acljax of git revision REV (named by its commit), timed
round-robin with today's (a before/after comparison in one run), and says whether it compiled to the same
program as today's (``same_program_as_today``: then any difference in time is the machine's noise). Rows go to
``runs/srwm_throughput/*.json`` (``--record``: ``benchmarks/results/``); a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from acljax.recording import add_output_arguments, environment, output_dir
from acljax.srwm import init_state, srwm_scan
from acljax.srwm.autotune import relative_error
from acljax.srwm.pallas import GPULayout

IMPLS = ("scan", "scan_remat", "reversible", "pallas")
WHOLE_BATCH = "reversible_whole_batch"  # reversible without its CPU default of cache-sized batch blocks
CPU_IMPLS = (*IMPLS[:-1], WHOLE_BATCH)  # "pallas" runs in interpret mode on a CPU: a test path, not a contender
GPU_KERNELS = tuple(f"pallas:{kernel}" for kernel in ("triton", "mosaic_gpu"))  # "pallas" with that GPULayout kernel
GPU_IMPLS = (*IMPLS[:-1], *GPU_KERNELS)
FULL_SIZES = [(16, 16, 16, 150), (16, 16, 16, 1000), (32, 16, 16, 500)]  # (B, H, d, T)
PAPER_SIZES = [(32, 16, 16, 150), (32, 16, 16, 500), (32, 16, 16, 2000)]  # the accelerator sweep
QUICK_SIZES = [(4, 4, 16, 200)]


def analytic_flops(batch, heads, d, steps, backward: bool, n_beta: int = 4) -> float:
    """Per head-step the forward does x W and (q - k) W (2 d E each) and the rank-1 update (2 d E),
    E = 3 d + n_beta (d_out = d); a backward costs twice the forward (model FLOPs, recompute not counted)."""
    forward = 6.0 * d * (3 * d + n_beta) * batch * heads * steps
    return 3 * forward if backward else forward


ROOT = Path(__file__).resolve().parent.parent


def baseline_commit(revision: str) -> str:
    """The short hash of the commit that ``revision`` (a hash, tag or branch) names; ValueError if none."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--short", f"{revision}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if revision.startswith("-") or found.returncode != 0:
        raise ValueError(f"--baseline must name a commit of {ROOT}, got {revision!r}")
    return found.stdout.strip()


@functools.cache
def srwm_scan_at(commit: str):
    """``srwm_scan`` of the acljax in ``commit``, imported beside today's as package ``acljax_<commit>``: its Python
    sources copied to runs/baselines/ with every ``acljax`` name renamed (enough for ``acljax.srwm``, not for code
    that reads the package's data files or its installed version)."""
    name = f"acljax_{commit}"
    parent = ROOT / "runs" / "baselines"
    if not (parent / name).exists():
        parent.mkdir(parents=True, exist_ok=True)
        files = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, "acljax"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
        with tempfile.TemporaryDirectory(dir=parent) as scratch:  # complete or absent: renamed into place at the end
            for path in (p for p in files if p.endswith(".py")):
                text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True,
                                      check=True).stdout
                target = Path(scratch) / name / Path(path).relative_to("acljax")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(re.sub(r"\bacljax\b", name, text))
            try:
                (Path(scratch) / name).rename(parent / name)
            except OSError:  # another process put it there first
                pass
    if str(parent) not in sys.path:
        sys.path.insert(0, str(parent))
    importlib.invalidate_caches()
    srwm = importlib.import_module(f"{name}.srwm")
    return lambda state, x, **options: srwm.srwm_scan(srwm.SRWMState(*state), x, **options)


def program_text(compiled) -> str:
    """A compiled program's optimized HLO without its debug information (source files, lines, stack frames), the
    module's name and the numbers XLA appends to instruction and computation names (``add.12``): equal texts are the
    same program, whatever code traced it."""
    text = re.sub(r", metadata=\{[^}]*\}|,? ?stack_frame_id=\d+", "", compiled.as_text())
    text = "\n".join(line for line in text.splitlines()
                     if not re.match(r"(\d+ |FileNames|FunctionNames|FileLocations|StackFrames)", line))
    text = re.sub(r"^HloModule \S+", "HloModule", text, flags=re.M)
    return re.sub(r"\b([A-Za-z_][\w\-]*?)((?:\.\d+)+)\b", r"\1", text)  # names only: 0.5 stays 0.5


def scan_options(impl: str, batch: int):
    """``impl``, ``pallas:KERNEL`` (the GPU kernel named, ``GPULayout(kernel=KERNEL)``) or ``impl@REV`` ->
    (srwm_scan, its options)."""
    impl, _, revision = impl.partition("@")
    run = srwm_scan_at(revision) if revision else srwm_scan
    if impl == WHOLE_BATCH:
        return run, {"impl": "reversible", "batch_block": batch}
    impl, _, kernel = impl.partition(":")
    return run, {"impl": impl, "gpu_layout": GPULayout(kernel=kernel)} if kernel else {"impl": impl}


def make_fn(impl: str, backward: bool):
    def forward(state, x):
        run, options = scan_options(impl, x.shape[0])
        y, final = run(state, x, **options)
        return jnp.sum(y * y) + sum(jnp.sum(w) for w in final)

    return jax.jit(jax.grad(forward, (0, 1)) if backward else forward)


def checked_values(impl: str, backward: bool, state, x):
    """What the error column compares: (y, final state) of a call, or the gradients of ``make_fn``'s loss."""
    if backward:
        return make_fn(impl, True)(state, x)
    run, options = scan_options(impl, x.shape[0])
    return jax.jit(lambda s, x: run(s, x, **options))(state, x)


def errors_against_float64_scan(impls, state, x, values) -> dict[str, float]:
    """Each implementation's float32 ``values(impl, state, x)`` (a pytree) against ``scan``'s in float64 on the same
    inputs (``acljax.srwm.autotune.relative_error``)."""
    got = {impl: jax.device_get(values(impl, state, x)) for impl in impls}
    with jax.enable_x64(True):
        truth = values("scan", *jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (state, x)))
        return {impl: relative_error(got[impl], truth) for impl in impls}


def _peak_bytes(memory) -> int | None:
    sizes = [getattr(memory, f"{part}_size_in_bytes", None) for part in ("temp", "argument", "output")]
    return None if None in sizes else sum(sizes)


def bench_group(impls, batch, heads, d, steps, backward, repeats, run=True) -> list[dict]:
    """Compile every implementation for one size and mode, then time them round-robin (run i of each
    implementation back to back), so that drift in the machine's speed hits all of them alike."""
    state = init_state(jax.random.key(0), heads, d)
    x = jax.random.normal(jax.random.key(1), (batch, steps, heads, d))
    rows, compiled = [], {}
    for impl in impls:
        start = time.perf_counter()
        try:
            compiled[impl] = make_fn(impl, backward).lower(state, x).compile()
        except Exception as error:  # noqa: BLE001 (e.g. a GPU kernel this device or JAX cannot run): a row saying so
            rows.append({"impl": impl, "mode": "fwd+bwd" if backward else "fwd", "B": batch, "H": heads, "d": d,
                         "T": steps, "error": f"{type(error).__name__}: {error}"[-500:]})
            continue
        memory = compiled[impl].memory_analysis()
        rows.append({"impl": impl, "mode": "fwd+bwd" if backward else "fwd", "B": batch, "H": heads, "d": d,
                     "T": steps, "compile_s": round(time.perf_counter() - start, 3),
                     "temp_bytes": getattr(memory, "temp_size_in_bytes", None), "xla_peak_bytes": _peak_bytes(memory)})
    for row in rows:  # a baseline's row: does it compile to the same program as today's?
        if "@" in row["impl"] and row["impl"].split("@")[0] in compiled:
            row["same_program_as_today"] = program_text(compiled[row["impl"]]) == program_text(
                compiled[row["impl"].split("@")[0]])
    if not run:
        return rows
    rows = [row for row in rows if "error" not in row] + [row for row in rows if "error" in row]
    impls = list(compiled)
    times = {impl: [] for impl in impls}
    for impl in impls:
        jax.block_until_ready(compiled[impl](state, x))  # warm-up
    for _ in range(repeats):
        for impl in impls:
            start = time.perf_counter()
            jax.block_until_ready(compiled[impl](state, x))
            times[impl].append(time.perf_counter() - start)
    flops = analytic_flops(batch, heads, d, steps, backward)
    stats = jax.devices()[0].memory_stats()  # before the float64 check below, whose memory is not the rows'
    for row in rows[:len(impls)]:
        median = statistics.median(times[row["impl"]])
        row.update(steady_s=median, min_s=min(times[row["impl"]]), max_s=max(times[row["impl"]]),
                   tokens_per_s=batch * steps / median, achieved_flops=flops / median, analytic_flops=flops)
        if "scan" in times:
            row["speedup_vs_scan"] = statistics.median(times["scan"]) / median
        if stats and "peak_bytes_in_use" in stats:
            row["device_peak_bytes"] = stats["peak_bytes_in_use"]  # cumulative over the group on GPU
    errors = errors_against_float64_scan(impls, state, x, lambda impl, s, x: checked_values(impl, backward, s, x))
    for row in rows[:len(impls)]:
        row["max_rel_error"] = errors[row["impl"]]
    return rows


def markdown(rows) -> str:
    lines = ["| impl | mode | B | H | d | T | compile s | s per call: min / median / max | tokens/s | x scan | "
             "GFLOP/s | error vs float64 | temp MiB | peak MiB |", "|---" * 14 + "|"]

    def mib(r, key):
        return f"{r[key] / 2**20:,.1f}" if r.get(key) is not None else "-"

    for r in rows:
        if "compile_s" not in r:  # did not compile: what it said, shortened
            reason = " ".join(r["error"].split())[:100].replace("|", "/")
            lines.append(f"| {r['impl']} | {r.get('mode', '-')} | {r['B']} | {r['H']} | {r['d']} | {r['T']} | "
                         f"failed: {reason} |" + " |" * 8)
            continue
        steady = (f"{r['min_s']:.4f} / {r['steady_s']:.4f} / {r['max_s']:.4f}" if "max_s" in r
                  else f"{r['steady_s']:.4f} (median)" if "steady_s" in r else "not run")
        tps = f"{r['tokens_per_s']:,.0f}" if "tokens_per_s" in r else "-"
        speedup = f"{r['speedup_vs_scan']:.2f}" if "speedup_vs_scan" in r else "-"
        gf = f"{r['achieved_flops'] / 1e9:.2f}" if "achieved_flops" in r else "-"
        error = f"{r['max_rel_error']:.1e}" if "max_rel_error" in r else "-"
        same = {True: " (same program)", False: " (another program)"}.get(r.get("same_program_as_today"), "")
        lines.append(f"| {r['impl']}{same} | {r['mode']} | {r['B']} | {r['H']} | {r['d']} | {r['T']} | "
                     f"{r['compile_s']:.2f} | {steady} | {tps} | {speedup} | {gf} | {error} | {mib(r, 'temp_bytes')} | "
                     f"{mib(r, 'xla_peak_bytes')} |")
    return "\n".join(lines)


def peak_rss_of_training_step(impl, batch, heads, d, steps) -> dict:
    """Run one forward+backward in a fresh process; report its peak resident memory."""
    code = (f"import resource, jax, jax.numpy as jnp\n"
            f"from benchmarks.srwm_throughput import make_fn\nfrom acljax.srwm import init_state\n"
            f"s = init_state(jax.random.key(0), {heads}, {d})\n"
            f"x = jax.random.normal(jax.random.key(1), ({batch}, {steps}, {heads}, {d}))\n"
            f"jax.block_until_ready(make_fn('{impl}', True)(s, x))\n"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    root = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    if out.returncode != 0:
        return {"impl": impl, "B": batch, "H": heads, "d": d, "T": steps, "error": out.stderr[-500:]}
    return {"impl": impl, "B": batch, "H": heads, "d": d, "T": steps, "mode": "fwd+bwd",
            "process_peak_rss_bytes": int(out.stdout.split()[-1]) * 1024,
            "wall_s": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run on CPU")
    parser.add_argument("--impls", nargs="+", choices=(*IMPLS, *GPU_KERNELS, WHOLE_BATCH),
                        help="default: on a GPU every implementation with each GPU kernel (pallas:triton, "
                             "pallas:mosaic_gpu), on a TPU every one, on a CPU all but 'pallas' (interpret mode)")
    parser.add_argument("--sizes", choices=("cpu", "paper"),
                        help="'cpu': B=16/32 at T=150, 500, 1000; 'paper': B=32, H=16, d=16 at T=150, 500, 2000 "
                             "(default: 'paper' on GPU/TPU, 'cpu' on a CPU)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row (median reported)")
    parser.add_argument("--long-sequence", type=int, metavar="T",
                        help="instead of the sweep: peak process memory of one B=16 H=16 d=16 training step "
                             "of length T per implementation (scan is only compiled: it would not fit)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time every implementation as of git revision REV (rows 'impl@COMMIT'), round-robin")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    if args.repeats < 10 and not args.quick:
        parser.error("--repeats must be >= 10 for recorded results")
    env = environment()
    on_cpu = jax.default_backend() == "cpu"
    args.impls = args.impls or list({"cpu": CPU_IMPLS, "gpu": GPU_IMPLS}.get(jax.default_backend(), IMPLS))
    if args.baseline:
        try:
            args.baseline = baseline_commit(args.baseline)  # rows and file named by the commit timed
        except ValueError as error:
            parser.error(str(error))
        srwm_scan_at(args.baseline)  # before any timing
        args.impls = [name for impl in args.impls for name in (impl, f"{impl}@{args.baseline}")]
    sizes = QUICK_SIZES if args.quick else FULL_SIZES if (args.sizes or ("cpu" if on_cpu else "paper")) == "cpu" \
        else PAPER_SIZES
    if args.long_sequence:
        rows = bench_group(list(dict.fromkeys(["scan", *args.impls])), 16, 16, 16, args.long_sequence, True, 0,
                           run=False)
        rows += [peak_rss_of_training_step(i, 16, 16, 16, args.long_sequence) for i in args.impls if i != "scan"]
        name = f"srwm_long_T{args.long_sequence}_{env['platform']}.json"
    else:
        rows = [row for size in sizes for backward in (False, True)
                for row in bench_group(args.impls, *size, backward, args.repeats)]
        name = (f"srwm_throughput_{env['platform']}{'_quick' if args.quick else ''}"
                f"{f'_vs_{args.baseline}' if args.baseline else ''}.json")
    for row in rows:
        row.update(env)
    out = output_dir(args, __file__) / name
    out.write_text(json.dumps({"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")
    print(json.dumps(env))
    print(markdown([r for r in rows if "compile_s" in r or "mode" in r]))
    for r in rows:
        if "process_peak_rss_bytes" in r:
            gib = r["process_peak_rss_bytes"] / 2**30
            print(f"{r['impl']}: T={r['T']} training step, process peak RSS {gib:.2f} GiB")
        if "error" in r:
            print(f"{r['impl']}: failed: {r['error']}")
    print(f"rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
