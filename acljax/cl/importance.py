"""Parameter importances: the Fisher information (four explicit estimators) and MAS, per example with vmap."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

FISHER_ESTIMATORS = ("exact", "sample", "argmax", "empirical")
BLOCK = 1024  # examples per compiled call; the last block is padded with zero-weight rows, so one compile serves all

# apply_fn(params, x (B, ...)) -> logits (B, K)
ApplyFn = Callable[[object, jax.Array], jax.Array]


def _check_data(x, name="x"):
    if x is None or len(x) == 0:
        raise ValueError(f"{name} must hold at least one example to estimate importances, got none")


def default_chunk_size() -> int:
    """Examples per vmapped gradient when none is given: 1 on CPU, where one example at a time ran about twice
    as fast as chunks of 64 (benchmarks/importance.py), 64 on accelerators, which need the batch."""
    return 1 if jax.default_backend() == "cpu" else 64


def _check_chunk(chunk_size):
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None (the backend's default), got {chunk_size!r}")
    return chunk_size or default_chunk_size()


def _mean_over_examples(per_example, params, arrays: tuple, chunk_size: int):
    """mean_i per_example(params, *(a[i] for a in arrays)): a ``lax.scan`` over chunks of ``chunk_size`` examples
    (vmapped) inside one compiled call per block of at most BLOCK examples."""
    n = len(arrays[0])
    block = min(max(BLOCK // chunk_size, 1), -(-n // chunk_size)) * chunk_size
    summed = _block_sum(per_example, chunk_size)
    total = jax.tree.map(jnp.zeros_like, params)
    for s in range(0, n, block):
        part = [a[s:s + block] for a in arrays]
        pad = block - len(part[0])
        weights = jnp.concatenate([jnp.ones(len(part[0])), jnp.zeros(pad)])
        part = [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in part]
        total = jax.tree.map(jnp.add, total, summed(params, weights, *part))
    return jax.tree.map(lambda t: t / n, total)


@functools.lru_cache(maxsize=64)
def _block_sum(per_example, chunk_size: int):
    """Jitted weighted sum of per-example pytrees over a block, compiled once per (per_example, chunk_size)."""
    @jax.jit
    def summed(params, weights, *arrays):
        chunks = [a.reshape(-1, chunk_size, *a.shape[1:]) for a in (weights, *arrays)]

        def step(total, chunk):
            w, *rows = chunk
            part = jax.vmap(per_example, in_axes=(None, *[0] * len(rows)))(params, *rows)
            # a weighted contraction, which XLA fuses with the per-example outer products; materialising them
            # and summing afterwards was 50x slower per example on CPU (benchmarks/importance.py)
            return jax.tree.map(lambda t, p: t + jnp.tensordot(w, p, axes=1), total, part), None

        return jax.lax.scan(step, jax.tree.map(jnp.zeros_like, params), chunks)[0]

    return summed


def fisher_diagonal(apply_fn: ApplyFn, params, x: jax.Array, y: jax.Array | None = None, *,
                    estimator: str, key: jax.Array | None = None, chunk_size: int | None = None):
    """Diagonal Fisher, averaged over the N examples of ``x`` (N, ...); leaves shaped like ``params``.

    estimator: "exact" (expectation over the model's predictive distribution, every class per example),
    "sample" (one label sampled from the model per example; needs ``key``), "argmax" (the model's most
    likely label), "empirical" (the true labels ``y``). Each squares per-example gradients of log p(label|x).
    The choice changes the right regularisation strength by orders of magnitude: it is never implicit.
    chunk_size: examples per vmapped gradient (None: ``default_chunk_size()``).
    """
    if estimator not in FISHER_ESTIMATORS:
        raise ValueError(f"estimator must be one of {FISHER_ESTIMATORS}, got {estimator!r}")
    _check_data(x)
    if estimator == "empirical" and (y is None or len(y) != len(x)):
        raise ValueError(f"estimator='empirical' needs labels y with one per example ({len(x)}), got "
                         f"{None if y is None else len(y)}")
    if estimator == "sample" and key is None:
        raise ValueError("estimator='sample' needs a PRNG key")

    chunk_size = _check_chunk(chunk_size)
    labels = jnp.zeros(len(x), jnp.int32) if y is None else jnp.asarray(y, jnp.int32)
    keys = jax.random.key_data(jax.random.split(key if key is not None else jax.random.key(0), len(x)))
    return _mean_over_examples(_fisher_per_example(apply_fn, estimator), params, (jnp.asarray(x), labels, keys),
                               chunk_size)


def mas_importance(apply_fn: ApplyFn, params, x: jax.Array, *, chunk_size: int | None = None):
    """MAS: mean over the N examples of ``x`` (N, ...) of ``|d ||f(x)||^2 / d theta|`` (unsupervised; f = the
    logits)."""
    _check_data(x)
    return _mean_over_examples(_mas_per_example(apply_fn), params, (jnp.asarray(x),), _check_chunk(chunk_size))


@functools.lru_cache(maxsize=64)
def _fisher_per_example(apply_fn: ApplyFn, estimator: str):
    """Per-example squared gradients; one function per (apply_fn, estimator), so compilations are reused."""

    def log_probs(p, xi):
        return jax.nn.log_softmax(apply_fn(p, xi[None])[0])

    def per_example(params, xi, label, key_data):
        if estimator == "exact":
            jac = jax.jacrev(log_probs)(params, xi)  # leaves (K, *shape)
            probs = jnp.exp(jax.lax.stop_gradient(log_probs(params, xi)))
            return jax.tree.map(lambda j: jnp.tensordot(probs, j ** 2, axes=1), jac)
        if estimator == "sample":
            label = jax.random.categorical(jax.random.wrap_key_data(key_data), log_probs(params, xi))
        elif estimator == "argmax":
            label = jnp.argmax(log_probs(params, xi))
        grad = jax.grad(lambda p: log_probs(p, xi)[label])(params)
        return jax.tree.map(jnp.square, grad)

    return per_example


@functools.lru_cache(maxsize=64)
def _mas_per_example(apply_fn: ApplyFn):
    def per_example(params, xi):
        grad = jax.grad(lambda p: jnp.sum(apply_fn(p, xi[None])[0] ** 2))(params)
        return jax.tree.map(jnp.abs, grad)

    return per_example
