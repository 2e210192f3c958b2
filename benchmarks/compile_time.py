"""Compile seconds, step seconds and memory of the ACL train step against the number of tasks, the objective
scanned over the tasks or looped over them (before: every task its own passes in the program).

    python benchmarks/compile_time.py [--models mlp conv4] [--tasks 2 4 8 16 24 64] [--loop-up-to 8] [--record]

For each model (``mlp``: the quickstart's, D = 128; ``conv4``: the paper's, D = 256) and number of tasks T
(5-way 5-shot, 5 queries each, as the glyph curriculum), the train step of :mod:`acljax.acl.step` is lowered
and compiled ahead of time (wall seconds of each; XLA's temporary and argument bytes from the compiled program),
then run ``--repeats`` times on random inputs, the two objectives of one T round-robin (median seconds). The
loop is compiled only up to ``--loop-up-to`` tasks (it grows with T: minutes past that on a CPU). ``--batch``
sequences per step.
Writes compile_time_<platform>.json (another --batch: compile_time_batch<B>_<platform>.json) under
runs/compile_time/ (--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from acljax import configs
from acljax.acl.objective import ACLObjective
from acljax.acl.step import empty_tally, make_train_step
from acljax.acl.trainer import MetaTrainer
from acljax.data.episodes import TaskSpec
from acljax.recording import add_output_arguments, environment, save_rows

MODELS = {"mlp": "acl_glyphs_quickstart", "conv4": "acl_glyphs_conv4"}
TASK = TaskSpec(n_way=5, k_shot=5, num_queries=5)
BATCH = 2  # another --batch writes compile_time_batch<B>_<platform>.json


def compiled_step(config, num_tasks: int, scan: bool, batch: int):
    """Lower and compile one train step -> (row's figures, compiled step, its arguments)."""
    config = dataclasses.replace(config, tasks=(TASK,) * num_tasks, batch_size=batch)
    trainer = MetaTrainer(config, (32, 32, 1))
    objective = ACLObjective(config.tasks, scan_tasks=scan)
    step = make_train_step(trainer.graphdef, trainer.tx, objective, donate=False)
    rng = np.random.default_rng(0)
    length = num_tasks * TASK.length
    batch_arrays = (jnp.asarray(rng.standard_normal((batch, length, 32, 32, 1)), jnp.float32),
                    jnp.asarray(rng.integers(0, config.num_classes + 1, (batch, length)), jnp.int32),
                    jnp.asarray(rng.integers(0, TASK.n_way, (batch, length)), jnp.int32))
    args = (trainer.params, trainer.tx.init(trainer.params), trainer.rest, empty_tally(len(objective.terms)),
            batch_arrays, jnp.ones(num_tasks), jax.random.key(0), jnp.int32(1), jnp.int32(0))
    start = time.perf_counter()
    lowered = step.lower(*args)
    lowered_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lowered_s
    memory = compiled.memory_analysis()
    jax.block_until_ready(compiled(*args))  # a first run, not timed
    return ({"tasks": num_tasks, "terms": len(objective.terms), "trace_and_lower_s": lowered_s,
             "compile_s": compile_s, "temp_bytes": getattr(memory, "temp_size_in_bytes", None),
             "argument_bytes": getattr(memory, "argument_size_in_bytes", None)}, compiled, args)


def timed_round_robin(steps: list, repeats: int) -> list[list[float]]:
    """Seconds of each of ``steps`` ((compiled, args) pairs), ``repeats`` times, in turn."""
    times = [[] for _ in steps]
    for _ in range(repeats):
        for (compiled, args), runs in zip(steps, times):
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            runs.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "conv4"])
    parser.add_argument("--tasks", nargs="+", type=int, default=[2, 4, 8, 16, 24, 64])
    parser.add_argument("--loop-up-to", type=int, default=8, help="compile the loop only up to this many tasks")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=5)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    rows = []
    for model in args.models:
        config = configs.load(MODELS[model])
        for num_tasks in args.tasks:
            scans = [scan for scan in (False, True) if scan or num_tasks <= args.loop_up_to]
            built = [compiled_step(config, num_tasks, scan, args.batch) for scan in scans]
            times = timed_round_robin([(compiled, step_args) for _, compiled, step_args in built], args.repeats)
            for scan, (figures, _, _), runs in zip(scans, built, times):
                row = {"model": model, "objective": "scan over tasks" if scan else "loop over tasks (before)",
                       "batch": args.batch, **figures, "step_s": statistics.median(runs), "runs_step_s": runs}
                print(f"{model} T={num_tasks:3d} {row['objective']:24s} compile {row['compile_s']:7.1f} s  "
                      f"trace+lower {row['trace_and_lower_s']:6.1f} s  step {row['step_s']:7.3f} s", flush=True)
                rows.append(row | environment())
    batch = "" if args.batch == BATCH else f"batch{args.batch}_"
    out = save_rows(rows, args, __file__, f"compile_time_{batch}{rows[0]['platform']}.json", argv)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
