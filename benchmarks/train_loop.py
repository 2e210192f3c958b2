"""Meta-training throughput of the whole loop (sampling, step, logging): prefetching and how often the loop
waits for the device's metrics, or the SRWM implementations.

    python benchmarks/train_loop.py [--config acl_glyphs_quickstart] [--steps 60] [--repeats 2] [--record]
    python benchmarks/train_loop.py --impls scan scan_remat reversible   # model.srwm.impl instead

Runs ``acljax.acl.meta_train`` for ``--steps`` steps in a new workdir per run, four variants timed
round-robin: episode sampling in the loop or ``prefetch=2`` batches ahead in a background thread, each
with the metrics fetched from the device every step (``log_every=1``) or every 10 (the step keeps them on
the device in between; the step always donates the parameter and optimiser buffers); with ``--impls``, one
variant per SRWM implementation (``model.srwm.impl``) with the loop's defaults. Throughput is sequences per
second from the loop's own ``sec_per_step`` lines, the first window (compilation) left out; the median over runs.
Writes train_loop[_impls]_<platform>.json under runs/train_loop/ (--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

from acljax import configs
from acljax.acl import meta_train
from acljax.recording import add_output_arguments, environment, save_rows
from acljax.srwm import IMPLEMENTATIONS

VARIANTS = {  # name -> config overrides
    "sampling in the loop, metrics every step": {"prefetch": 0, "log_every": 1},
    "sampling in the loop, metrics every 10 steps": {"prefetch": 0, "log_every": 10},
    "prefetch 2, metrics every step": {"prefetch": 2, "log_every": 1},
    "prefetch 2, metrics every 10 steps": {"prefetch": 2, "log_every": 10},
}


def sec_per_step(workdir: Path) -> float:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    timed = [r["sec_per_step"] for r in rows if "sec_per_step" in r][1:]  # the first window compiles
    return statistics.median(timed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="acl_glyphs_quickstart")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--impls", nargs="+", choices=sorted(set(IMPLEMENTATIONS) - {"reference"}),
                        help="compare these SRWM implementations (model.srwm.impl) instead of prefetching and donation")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    base = dataclasses.replace(configs.load(args.config), steps=args.steps, log_every=10, validate_every=args.steps,
                               validation_batches=1, test_batches=1)
    variants = VARIANTS if not args.impls else {
        impl: {"model": dataclasses.replace(base.model, srwm=dataclasses.replace(base.model.srwm, impl=impl))}
        for impl in args.impls}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # round-robin, so drift hits every variant alike
            for i, (name, overrides) in enumerate(variants.items()):
                workdir = Path(tmp) / f"{repeat}_{i}"
                meta_train(dataclasses.replace(base, **overrides), workdir, progress=False)
                times[name].append(sec_per_step(workdir))
                print(f"{name}: {base.batch_size / times[name][-1]:.1f} sequences/s")
    rows = [{"variant": name, "config": args.config, "batch_size": base.batch_size, "steps": args.steps,
             "median_sec_per_step": statistics.median(t), "sequences_per_sec": base.batch_size / statistics.median(t),
             "runs_sec_per_step": t, **environment()} for name, t in times.items()]
    suffix = "_impls" if args.impls else ""
    out = save_rows(rows, args, __file__, f"train_loop{suffix}_{rows[0]['platform']}.json", argv)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
