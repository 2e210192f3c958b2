"""Where a paper-size ACL meta-training step spends its time and memory, by component.

    python benchmarks/meta_step.py [--config acl_glyphs_2task] [--repeats 3] [--record]
    python benchmarks/meta_step.py --impls scan scan_remat reversible pallas   # SRWM implementations instead

The model, tasks and batch of the config (default: the paper's Conv-4 model on two 5-way 15-shot tasks
with first shots, batch 32: 162 images per sequence, 5,184 per step), on random inputs. Rows: the Conv-4
encoder alone (forward + backward over every image of the batch), the SRWM network alone (forward +
backward over the whole sequence, one pass), and the full train step (objective, gradient, Adam); each
with XLA's temporary memory of the compiled program and the median seconds of ``--repeats`` runs, timed
round-robin. Variants side by side: by default ``max_pool="reduce_window"`` (``nnx.max_pool``, whose
gradient is XLA's select-and-scatter; acljax before 2026-11-23) and ``"reshape"`` (``max_pool_2x2``,
now); with ``--impls``, the SRWM implementations (``model.srwm.impl``) instead, sequences/s reported.
Writes meta_step[_impls]_<platform>.json under runs/meta_step/ (--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acljax import configs
from acljax.acl.step import empty_tally, make_train_step
from acljax.acl.trainer import MetaTrainer
from acljax.nn import learner as learner_module
from acljax.recording import add_output_arguments, environment, save_rows
from acljax.srwm import IMPLEMENTATIONS

POOLS = {"reduce_window": lambda x: nnx.max_pool(x, (2, 2), (2, 2)), "reshape": learner_module.max_pool_2x2}


@contextmanager
def pooling(name: str):
    """Conv4 traced with another max pool (the function is looked up when a program is traced)."""
    original = learner_module.max_pool_2x2
    learner_module.max_pool_2x2 = POOLS[name]
    try:
        yield
    finally:
        learner_module.max_pool_2x2 = original


def programs(learner: MetaTrainer, batch_size: int, length: int) -> dict:
    """name -> (jitted function, arguments) for the encoder, the SRWM network and the full step."""
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((batch_size, length, *learner.image_shape)), jnp.float32)
    feedback = jnp.asarray(rng.integers(0, learner.config.num_classes + 1, (batch_size, length)), jnp.int32)
    target = jnp.asarray(rng.integers(0, learner.config.num_classes, (batch_size, length)), jnp.int32)
    key, objective = jax.random.key(0), learner.objectives[0]
    tokens = learner.model(learner.params, learner.rest, train=False).embed(images[:1], feedback[:1])
    tokens = jnp.zeros((batch_size, length, tokens.shape[-1]), jnp.float32)

    def encoder(params, rest, images):
        model = learner.model(params, rest, train=True, key=key)
        return model.encoder(images.reshape(-1, *learner.image_shape)).sum()

    def srwm_net(params, rest, tokens):
        return learner.model(params, rest, train=True, key=key).sequence(tokens)[0].sum()

    train_step = make_train_step(learner.graphdef, learner.tx, objective, donate=False)
    scales = jnp.ones(len(learner.config.tasks), jnp.float32)
    return {"encoder fwd+bwd": (jax.jit(jax.grad(encoder)), (learner.params, learner.rest, images)),
            "SRWM net fwd+bwd": (jax.jit(jax.grad(srwm_net)), (learner.params, learner.rest, tokens)),
            "train step": (train_step, (learner.params, learner.tx.init(learner.params), learner.rest,
                                        empty_tally(len(objective.terms)), (images, feedback, target), scales, key,
                                        jnp.int32(1), jnp.int32(0)))}


def variants(config, image_shape, impls):
    """(variant name, learner, context its programs are traced in): max pools, or SRWM implementations."""
    if not impls:
        learner = MetaTrainer(config, image_shape)
        return [(pool, learner, pooling(pool)) for pool in POOLS]
    return [(impl, MetaTrainer(configs.override(config, [f"model.srwm.impl={impl!r}"]), image_shape), nullcontext())
            for impl in impls]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="acl_glyphs_2task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", nargs="+", choices=sorted(set(IMPLEMENTATIONS) - {"reference"}),
                        help="compare these SRWM implementations (with the current max pool) instead of max pools")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    config = configs.load(args.config)
    if config.model.encoder != "conv4":
        parser.error(f"--config {args.config}: the comparison is about the Conv-4 encoder, this config uses "
                     f"{config.model.encoder!r}")
    size = config.pools[config.tasks[0].pool].size or 32
    image_shape = (size, size, config.pools[config.tasks[0].pool].channels or 1)
    length = sum(task.length for task in config.tasks)
    compiled, rows = {}, []
    for variant, learner, context in variants(config, image_shape, args.impls):
        with context:
            for name, (fn, fn_args) in programs(learner, config.batch_size, length).items():
                start = time.perf_counter()
                compiled[variant, name] = (fn.lower(*fn_args).compile(), fn_args)
                memory = compiled[variant, name][0].memory_analysis()
                rows.append({"variant": variant, "program": name, "compile_s": round(time.perf_counter() - start, 2),
                             "temp_gib": memory.temp_size_in_bytes / 2**30})
    for program, fn_args in compiled.values():
        jax.block_until_ready(program(*fn_args))  # warm-up
    times = {key: [] for key in compiled}
    for _ in range(args.repeats):
        for key, (program, fn_args) in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(program(*fn_args))
            times[key].append(time.perf_counter() - start)
    env = environment()
    for row in rows:
        median = statistics.median(times[row["variant"], row["program"]])
        row.update(median_s=median, sequences_per_s=config.batch_size / median, repeats=args.repeats,
                   batch=config.batch_size, sequence_length=length, config=args.config, **env)
    name = f"meta_step{'_impls' if args.impls else ''}_{env['platform']}.json"
    out = save_rows(rows, args, __file__, name, argv)
    print(f"| {'SRWM impl' if args.impls else 'max pool'} | program | median s | sequences/s | XLA temp GiB |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['program']} | {r['median_s']:.2f} | {r['sequences_per_s']:.1f} | "
              f"{r['temp_gib']:.2f} |")
    print(f"\n{env['platform']} ({env['device']}, {env['cpu_count']} cores), -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
