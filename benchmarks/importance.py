"""Fisher / MAS importance speed (ms per example) on Hsu et al.'s MLP 784-400-400-10.

    python benchmarks/importance.py [--examples 2048] [--repeats 5]

Side by side in one process, timed round-robin: ``fisher_diagonal`` (argmax estimator) and
``mas_importance`` at chunk sizes 1 and 64, and the materialised baseline they replace, which forms
every per-example squared gradient of a 256-example chunk (jit of vmap) and sums it with ``.sum(0)``.
Random inputs (the cost does not depend on the data). Writes importance_<platform>.json under
runs/importance/ (--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from acljax.cl.importance import fisher_diagonal, mas_importance
from acljax.cl.models import init_mlp, mlp
from acljax.recording import add_output_arguments, environment, save_rows


def materialised_fisher(params, x, chunk=256):
    """The baseline: every per-example squared gradient of a chunk in memory, then summed."""
    def per_example(p, xi):
        log_probs = lambda q: jax.nn.log_softmax(mlp(q, xi[None])[0])  # noqa: E731
        label = jnp.argmax(log_probs(p))
        return jax.tree.map(jnp.square, jax.grad(lambda q: log_probs(q)[label])(p))

    squares = jax.jit(jax.vmap(per_example, in_axes=(None, 0)))
    total = jax.tree.map(jnp.zeros_like, params)
    for s in range(0, len(x), chunk):
        total = jax.tree.map(lambda t, g: t + g.sum(0), total, squares(params, x[s:s + chunk]))
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    params = init_mlp(jax.random.key(0), (784, 400, 400, 10))
    x = jax.random.normal(jax.random.key(1), (args.examples, 784))
    variants = {
        "fisher_diagonal(argmax), chunk 1": lambda: fisher_diagonal(mlp, params, x, estimator="argmax", chunk_size=1),
        "fisher_diagonal(argmax), chunk 64": lambda: fisher_diagonal(mlp, params, x, estimator="argmax", chunk_size=64),
        "materialised argmax Fisher (baseline)": lambda: materialised_fisher(params, x),
        "mas_importance, chunk 1": lambda: mas_importance(mlp, params, x, chunk_size=1),
        "mas_importance, chunk 64": lambda: mas_importance(mlp, params, x, chunk_size=64),
    }
    for run in variants.values():  # compile
        jax.block_until_ready(run())
    times = {name: [] for name in variants}
    for _ in range(args.repeats):  # round-robin, so drift hits every variant alike
        for name, run in variants.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    rows = [{"benchmark": "importance", "variant": name, "examples": args.examples,
             "ms_per_example": 1e3 * statistics.median(t) / args.examples, "repeats": args.repeats,
             **environment()} for name, t in times.items()]
    out = save_rows(rows, args, __file__, f"importance_{jax.devices()[0].platform}.json", argv)
    for row in rows:
        print(f"{row['variant']:40s} {row['ms_per_example']:.3f} ms/example")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
