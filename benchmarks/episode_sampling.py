"""Episode sampling speed: a meta-batch of 32 two-task 5-way 15-shot sequences (with first shots and
one query per task, 32x32x3 images) from cached arrays, on one core.

    python benchmarks/episode_sampling.py [--data glyphs] [--repeats 20]

Uses the prepared data set when it is in the cache (``acljax data prepare glyphs``), else random
uint8 images of the same shape (1,000 classes x 20 examples). Writes a JSON row under runs/episode_sampling/
(--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from acljax.data import ClassPool, ImageSet, Preprocessing, TaskSpec, channel_statistics, load, sample_episodes
from acljax.data.store import read_info
from acljax.recording import add_output_arguments, output_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="glyphs")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    preprocessing = Preprocessing(size=32, channels=3)
    if read_info(args.data):
        split = "background" if args.data == "glyphs" else "train"
        data = load(args.data, split, preprocessing, progress=False)
        mean, std = channel_statistics(args.data, preprocessing)
        source = f"{args.data}[{split}]"
    else:
        rng = np.random.default_rng(0)
        data = ImageSet(rng.integers(0, 256, (20000, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(1000), 20))
        mean, std, source = 0.5, 0.25, "random uint8, 1000 classes x 20"
    pool = ClassPool(data, mean, std, args.data)
    tasks = [TaskSpec(5, 15, 1, first_shot=True), TaskSpec(5, 15, 1, first_shot=True)]
    rng = np.random.default_rng(0)
    sample_episodes(rng, [pool], tasks, args.batch)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        episodes = sample_episodes(rng, [pool], tasks, args.batch)
        times.append(time.perf_counter() - start)
    row = {"benchmark": "episode_sampling", "source": source, "batch": args.batch, "tasks": "2 x 5-way 15-shot",
           "sequence_length": episodes.x.shape[1], "median_s": statistics.median(times), "min_s": min(times),
           "repeats": args.repeats, "cores": 1, "cpu": platform.processor() or platform.machine(),
           "numpy": np.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "command": " ".join(["episode_sampling.py", *(argv or sys.argv[1:])])}
    out = output_dir(args, __file__) / "episode_sampling_cpu.json"
    out.write_text(json.dumps(row, indent=1) + "\n")
    print(f"{args.batch} sequences of {row['sequence_length']} images from {source}: "
          f"median {row['median_s'] * 1000:.1f} ms (min {row['min_s'] * 1000:.1f} ms) on one core -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
