"""The foundation demo: an SRWM network learns in-context associative recall on CPU.

Readable on purpose: fork it as a template for a trainer. ``acljax demo --workdir runs/demo``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from acljax.checks import NonFiniteLoss, require_positive_finite
from acljax.data.recall import recall_batch
from acljax.nn import SRWMNet
from acljax.workdir import Workdir


@dataclasses.dataclass(frozen=True)
class RecallDemoConfig:
    num_keys: int = 16
    num_values: int = 8
    num_pairs: int = 8
    num_queries: int = 8
    num_features: int = 64
    num_heads: int = 4
    num_blocks: int = 2
    batch_size: int = 64
    learning_rate: float = 3e-3
    steps: int = 600
    log_every: int = 50
    checkpoint_every: int = 200
    eval_sequences: int = 1024
    seed: int = 0

    def __post_init__(self):
        require_positive_finite("RecallDemoConfig", learning_rate=self.learning_rate)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and field.name != "seed" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"RecallDemoConfig.{field.name} must be a positive int, got {value!r}")

    def sample(self, rng: np.random.Generator, batch_size: int):
        return recall_batch(rng, batch_size, num_keys=self.num_keys, num_values=self.num_values,
                            num_pairs=self.num_pairs, num_queries=self.num_queries)


def build_model(config: RecallDemoConfig) -> SRWMNet:
    return SRWMNet(config.num_keys + config.num_values + 1, config.num_values, num_features=config.num_features,
                   num_heads=config.num_heads, num_blocks=config.num_blocks, dropout_rate=0.0,
                   rngs=nnx.Rngs(config.seed))


def query_loss_and_accuracy(logits, targets, is_query):
    """Mean cross-entropy and accuracy over query positions. logits (B, T, V), targets (B, T), is_query (T,)."""
    weight = jnp.broadcast_to(is_query, targets.shape).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    return (ce * weight).sum() / weight.sum(), (correct * weight).sum() / weight.sum()


def train(config: RecallDemoConfig, workdir: str, *, show_progress: bool = True) -> dict:
    """Train (resuming from the workdir's last checkpoint), evaluate on fresh sequences, save results.json."""
    run = Workdir(workdir)
    graphdef, params, rest = nnx.split(build_model(config), nnx.Param, ...)
    tx = optax.adam(config.learning_rate)
    with run.exclusive():  # one run at a time in a workdir
        start, (params, opt_state) = run.restore_latest((params, tx.init(params)))

        def loss_fn(params, inputs, targets, is_query):
            logits, _ = nnx.merge(graphdef, params, rest)(inputs)
            return query_loss_and_accuracy(logits, targets, is_query)

        @jax.jit
        def train_step(params, opt_state, inputs, targets, is_query):
            (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, inputs, targets, is_query)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss, acc

        bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="recall demo",
                   disable=not show_progress)
        for step in bar:
            batch = config.sample(np.random.default_rng([config.seed, step]), config.batch_size)
            params, opt_state, loss, acc = train_step(params, opt_state, *batch)
            logs = (step + 1) % config.log_every == 0 or step == 0
            saves = (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps
            if (logs or saves) and not np.isfinite(float(loss)):  # never logged or saved as if it were a result
                raise NonFiniteLoss(f"training step {step + 1}")
            if logs:
                run.log(step + 1, loss=float(loss), query_accuracy=float(acc))
                bar.set_postfix(loss=f"{float(loss):.3f}", acc=f"{float(acc):.3f}")
            if saves:
                run.save(step + 1, (params, opt_state))

        eval_batch = config.sample(np.random.default_rng([config.seed, 10**9]), config.eval_sequences)
        eval_loss, eval_acc = jax.jit(loss_fn)(params, *eval_batch)
        results = {"config": dataclasses.asdict(config), "steps": config.steps,
                   "eval_query_loss": float(eval_loss), "eval_query_accuracy": float(eval_acc),
                   "chance_accuracy": 1.0 / config.num_values}
        run.write_json("results.json", results)
    return results
