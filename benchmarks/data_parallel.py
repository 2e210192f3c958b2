"""Meta-training throughput (sequences/s) against the number of data-parallel devices.

    python benchmarks/data_parallel.py [--fake-cpu-devices 4] [--batch 16] [--repeats 10]

On a CPU-only machine it makes ``--fake-cpu-devices`` host devices (XLA_FLAGS) that share the same
cores: the figures then show that the code path works and what splitting costs, not a speed-up. On a
GPU/TPU machine it uses the real devices. Model and tasks: the quickstart's (experiments/
acl_glyphs_quickstart.py) on random images, so no data set is needed. Meshes of 1, 2, 4, ... devices
are timed round-robin in one process. Writes data_parallel_<platform>.json under
runs/data_parallel/ (--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import os
import sys

from acljax.recording import add_output_arguments, save_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fake-cpu-devices", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.fake_cpu_devices}")

    import dataclasses
    import platform
    import statistics
    import time

    import jax
    import numpy as np

    from acljax import configs
    from acljax.acl.step import empty_tally, make_train_step
    from acljax.acl.trainer import MetaTrainer, sample
    from acljax.data.episodes import ClassPool
    from acljax.data.store import ImageSet
    from acljax.distributed import make_mesh, replicate, shard_batch

    config = dataclasses.replace(configs.load("acl_glyphs_quickstart"),
                                 batch_size=args.batch)
    rng = np.random.default_rng(0)
    shape = (32, 32, 1)
    pool = ClassPool(ImageSet(rng.integers(0, 256, (2000, *shape), dtype=np.uint8), np.repeat(np.arange(100), 20)),
                     0.5, 0.25)
    learner = MetaTrainer(config, shape)
    batch, scales = sample(config, [pool], rng, [0, 1], args.batch)
    counts = [n for n in (1, 2, 4, 8, 16) if n <= jax.device_count() and args.batch % n == 0]
    setups = {}
    for n in counts:
        mesh = make_mesh(n)
        setups[n] = (shard_batch(mesh, batch), replicate(mesh, learner.params), replicate(mesh, learner.rest),
                     replicate(mesh, learner.tx.init(learner.params)))

    train_step = make_train_step(learner.graphdef, learner.tx, learner.objectives[0], donate=False)
    tally = empty_tally(len(learner.objectives[0].terms))

    def step(n):
        x, params, rest, opt_state = setups[n]
        out = train_step(params, opt_state, rest, replicate(make_mesh(n), tally), x, scales, jax.random.key(0),
                         np.int32(1), np.int32(0))
        jax.block_until_ready(out)

    compile_s = {}
    for n in counts:
        start = time.perf_counter()
        step(n)
        compile_s[n] = time.perf_counter() - start
    times = {n: [] for n in counts}
    for _ in range(args.repeats):  # round-robin, so drift hits every device count alike
        for n in counts:
            start = time.perf_counter()
            step(n)
            times[n].append(time.perf_counter() - start)
    device = jax.devices()[0]
    rows = [{"benchmark": "data_parallel_meta_training_step", "devices": n, "global_batch": args.batch,
             "median_s": statistics.median(times[n]), "sequences_per_s": args.batch / statistics.median(times[n]),
             "first_call_s": compile_s[n], "repeats": args.repeats, "platform": device.platform,
             "device_kind": device.device_kind, "fake_cpu_devices": device.platform == "cpu",
             "cores": os.cpu_count(), "jax": jax.__version__, "python": platform.python_version()}
            for n in counts]
    out = save_rows(rows, args, __file__, f"data_parallel_{device.platform}.json", argv)
    print("| devices | step (s, median) | sequences/s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['devices']} | {r['median_s']:.3f} | {r['sequences_per_s']:.1f} |")
    print(f"\n{device.platform} ({device.device_kind}), written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
