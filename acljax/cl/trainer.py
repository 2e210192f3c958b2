"""Sequential training of gradient-based continual learners, every seed in one program (``vmap``).

A :class:`SequentialLearner` follows :mod:`acljax.eval.protocol`: ``reset(seeds)`` draws one MLP per
seed, ``learn(i, task)`` trains on task i (the regulariser inside the optax chain, consolidated at
the end of the task), ``accuracy(i, task)`` tests every seed. Task-incremental streams mask the
logits to the task's outputs in training and testing (equivalent to one head per task).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from acljax.checks import NonFiniteLoss, require_finite, require_positive_finite
from acljax.cl.importance import FISHER_ESTIMATORS, fisher_diagonal, mas_importance
from acljax.cl.regularizers import (
    ewc_consolidate,
    l2_consolidate,
    mas_consolidate,
    online_ewc_consolidate,
    quadratic_penalty,
)
from acljax.cl.replay import (
    POLICIES,
    agem_project,
    class_balanced_add,
    init_buffer,
    reservoir_add,
    sample_buffer,
)
from acljax.cl.si import si_consolidate, synaptic_intelligence
from acljax.data.streams import Task
from acljax.distributed import local_rows, make_mesh, replicate, shard_batch

METHODS = ("naive", "joint", "l2", "ewc", "online_ewc", "si", "mas", "replay", "agem", "lwf")
OPTIMIZERS = {  # PyTorch's defaults, which the published baselines used (optax's Adagrad starts its sum at 0.1)
    "sgd": optax.sgd, "adam": optax.adam,
    "adagrad": lambda lr: optax.adagrad(lr, initial_accumulator_value=0.0, eps=1e-10),
}
PENALTY_METHODS = ("l2", "ewc", "online_ewc", "mas")
MEMORY_METHODS = ("replay", "agem")


@dataclasses.dataclass(frozen=True)
class SequentialConfig:
    """method: one of METHODS; strength in acljax's convention (penalty = strength/2 sum I (theta - a)^2;
    for LwF the distillation weight); importance_samples: examples of the task used for Fisher / MAS
    importances (None: every training example of the task, as Hsu et al.). Replay and A-GEM keep
    ``memory_size`` examples (``buffer``: "reservoir" or "class_balanced"), filled at the end of each task, and
    read ``memory_batch`` of them per step; LwF distils the previous model's outputs at ``temperature``."""

    method: str = "naive"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    strength: float = 0.0
    gamma: float = 1.0
    xi: float = 0.1
    fisher_estimator: str = "empirical"
    importance_samples: int | None = None
    reset_optimizer: bool = False
    hidden: tuple[int, ...] = (400, 400)
    epochs: int = 4
    batch_size: int = 128
    num_devices: int | None = None  # data-parallel devices for each minibatch; None: all of them
    memory_size: int = 1000
    memory_batch: int = 128
    buffer: str = "reservoir"
    temperature: float = 2.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.fisher_estimator not in FISHER_ESTIMATORS:
            raise ValueError(f"fisher_estimator must be one of {FISHER_ESTIMATORS}, got {self.fisher_estimator!r}")
        require_positive_finite("SequentialConfig", learning_rate=self.learning_rate, temperature=self.temperature)
        require_finite("SequentialConfig", strength=self.strength, xi=self.xi, gamma=self.gamma)
        for name in ("epochs", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.importance_samples is not None and not self.importance_samples > 0:
            raise ValueError(f"importance_samples must be > 0 or None (every example), got {self.importance_samples!r}")
        if self.strength < 0:
            raise ValueError(f"strength must be >= 0, got {self.strength!r}")
        if self.buffer not in POLICIES:
            raise ValueError(f"buffer must be one of {POLICIES}, got {self.buffer!r}")
        for name in ("memory_size", "memory_batch"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.method == "lwf" and not self.strength > 0:
            raise ValueError(f"strength (the distillation weight) must be > 0 for LwF, got {self.strength!r}")
        if self.method == "si" and not self.xi > 0:
            raise ValueError(f"xi must be > 0 for SI, got {self.xi!r}")


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> list[dict]:
    """PyTorch's default Linear init (uniform +-1/sqrt(fan_in) for weights and biases), as in Hsu et al."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1 / math.sqrt(fan_in)
        params.append({"w": jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                       "b": jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)})
    return params


def mlp(params: list[dict], x: jax.Array) -> jax.Array:
    """x (B, ...) -> logits (B, K); ReLU hidden layers."""
    h = x.reshape(len(x), -1)
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def _masked(logits, mask):
    return jnp.where(mask, logits, -1e9)


class SequentialLearner:
    runs_all_seeds = True

    def __init__(self, config: SequentialConfig, num_outputs: int, input_shape: tuple[int, ...], mean, std,
                 progress: bool = True):
        self.config, self.progress = config, progress
        self.sizes = (int(np.prod(input_shape)), *config.hidden, num_outputs)
        self.mean, self.std = np.float32(mean), np.float32(std)
        inner = OPTIMIZERS[config.optimizer](config.learning_rate)
        self.inner = inner
        if config.method == "si":
            self.tx = synaptic_intelligence(inner, config.strength)
        elif config.method in PENALTY_METHODS:
            self.tx = optax.chain(quadratic_penalty(config.strength), inner)
        else:
            self.tx = inner

        def ce(p, x, y, mask):  # mask (K,) or per example (B, K) -> (B,)
            return optax.softmax_cross_entropy_with_integer_labels(_masked(mlp(p, x), mask), y)

        def step(params, opt_state, x, y, masks, context):
            """masks: (this task's outputs (K,), each label's task outputs (K, K), the previous tasks'
            outputs (K,)); context per seed: (memory buffer, key) for replay and A-GEM, (teacher
            parameters, distillation weight) for LwF, None otherwise."""
            mask, label_masks, teacher_mask = masks

            def memory_loss(p):  # summed over the valid stored examples of a sampled memory batch
                mx, my, valid = sample_buffer(context[0], context[1], config.memory_batch)
                return (ce(p, mx, my, label_masks[my]) * valid).sum(), valid.sum()

            def loss_fn(p):
                if config.method == "replay":  # current and stored examples in one batch
                    stored, count = memory_loss(p)
                    return (ce(p, x, y, mask).sum() + stored) / (len(y) + count)
                if config.method == "lwf":  # KL(teacher || student) at temperature t on the old outputs
                    teacher, weight = context
                    t = config.temperature
                    old = jax.nn.log_softmax(_masked(mlp(teacher, x), teacher_mask) / t)
                    new = jax.nn.log_softmax(_masked(mlp(p, x), teacher_mask) / t)
                    distill = jnp.mean(jnp.sum(jnp.exp(old) * (old - new), -1))
                    return ce(p, x, y, mask).mean() + weight * t**2 * distill
                return ce(p, x, y, mask).mean()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            if config.method == "agem":
                grads = agem_project(grads, jax.grad(lambda p: memory_loss(p)[0])(params))
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self._step = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, None, 0)))
        self.mesh = make_mesh(config.num_devices)  # minibatches split over its data axis, parameters replicated
        def accuracy(params, x, y, mask):
            return jnp.mean(jnp.argmax(_masked(mlp(params, x), mask), -1) == y)

        self._accuracy = jax.jit(jax.vmap(accuracy, in_axes=(0, None, None, None)))
        self.seen: list[Task] = []

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) * np.float32(1 / 255) - self.mean) / self.std

    def reset(self, seeds: list[int]) -> None:
        self.seeds = list(seeds)
        self.params = jax.vmap(lambda k: init_mlp(k, self.sizes))(jnp.stack([jax.random.key(s) for s in seeds]))
        self.params = replicate(self.mesh, self.params)
        self.opt_state = replicate(self.mesh, jax.vmap(self.tx.init)(self.params))
        self.seen = []
        outputs = self.sizes[-1]
        self.label_masks = np.ones((outputs, outputs), bool)  # row l: the outputs of the task that owns label l
        self.teacher, self.buffer = self.params, None
        if self.config.method in MEMORY_METHODS:
            classes = outputs if self.config.buffer == "class_balanced" else None
            empty = init_buffer(self.config.memory_size, (self.sizes[0],), num_classes=classes)
            self.buffer = replicate(self.mesh, jax.tree.map(lambda a: jnp.stack([a] * len(seeds)), empty))

    def learn(self, index: int, task: Task) -> None:
        cfg = self.config
        self.seen.append(task)
        data = [t.train for t in self.seen] if cfg.method == "joint" else [task.train]
        x = self._inputs(np.concatenate([d.x for d in data]))
        y = np.concatenate([d.y for d in data])
        mask = jnp.asarray(np.any([t.output_mask for t in self.seen], axis=0) if cfg.method == "joint"
                           else task.output_mask)
        previous_outputs = np.any([t.output_mask for t in self.seen[:-1]], axis=0) if index else \
            np.zeros(self.sizes[-1], bool)
        self.label_masks[np.unique(task.train.y)] = task.output_mask
        masks = (mask, jnp.asarray(self.label_masks), jnp.asarray(previous_outputs))
        per_epoch = len(y) // cfg.batch_size
        if per_epoch == 0:
            raise ValueError(f"task {index} ({task.name}) has {len(y)} training examples, fewer than "
                             f"SequentialConfig.batch_size={cfg.batch_size}: lower batch_size")
        rows = local_rows(cfg.batch_size, self.mesh)  # this process's part of each minibatch
        bar = tqdm(total=cfg.epochs * per_epoch, desc=f"{cfg.method} task {index}", disable=not self.progress,
                   leave=False)
        for epoch in range(cfg.epochs):
            order = np.stack([np.random.default_rng([s, index, epoch]).permutation(len(y)) for s in self.seeds])
            for b in range(per_epoch):
                idx = order[:, b * cfg.batch_size:(b + 1) * cfg.batch_size][:, rows]  # (S, batch): a shuffle per seed
                xb, yb = shard_batch(self.mesh, (x[idx], y[idx]), axis=1)
                self.params, self.opt_state, loss = self._step(self.params, self.opt_state, xb, yb, masks,
                                                               self._context(index, epoch * per_epoch + b))
                bar.update()
            if not np.isfinite(np.asarray(loss)).all():
                raise NonFiniteLoss(f"task {index}, epoch {epoch} (seeds {self.seeds})")
            bar.set_postfix(loss=f"{float(loss.mean()):.3f}")
        bar.close()
        self._consolidate(index, task, x, y, mask)
        self._remember(index, x, y)

    def _keys(self, index: int, step: int) -> jax.Array:
        """(S,) keys, one per seed, for step ``step`` of task ``index``."""
        return jnp.stack([jax.random.fold_in(jax.random.fold_in(jax.random.key(s), index), step) for s in self.seeds])

    def _context(self, index: int, step: int):
        """Per-seed inputs of the step that are not parameters or data (see ``step``)."""
        if self.config.method in MEMORY_METHODS:
            return self.buffer, self._keys(index, step)
        if self.config.method == "lwf":
            return self.teacher, jnp.full(len(self.seeds), self.config.strength if index else 0.0)
        return None

    def _remember(self, index: int, x, y) -> None:
        """End of a task: LwF keeps the model as the next teacher; replay and A-GEM offer the task's
        training examples to their buffers."""
        if self.config.method == "lwf":
            self.teacher = self.params
        if self.config.method in MEMORY_METHODS:
            add = reservoir_add if self.config.buffer == "reservoir" else class_balanced_add
            flat = jnp.asarray(x.reshape(len(x), -1))
            self.buffer = replicate(self.mesh, jax.vmap(add, in_axes=(0, None, None, 0))(
                self.buffer, flat, jnp.asarray(y), self._keys(index, 2**31 - 1)))

    def _importance_data(self, index, x, y, s):
        if self.config.importance_samples is None or self.config.importance_samples >= len(y):
            return x, y
        n = self.config.importance_samples
        pick = np.random.default_rng([self.seeds[s], index, 10**6]).choice(len(y), n, replace=False)
        return x[pick], y[pick]

    def _consolidate(self, index: int, task: Task, x, y, mask) -> None:
        cfg = self.config
        if cfg.method not in (*PENALTY_METHODS, "si"):  # nothing to consolidate (see _remember)
            return
        if cfg.method == "si":
            reset = self.inner if cfg.reset_optimizer else None
            consolidated = jax.vmap(lambda st, p: si_consolidate(st, p, xi=cfg.xi, reset_inner=reset))(
                self.opt_state, self.params)
            self.opt_state = replicate(self.mesh, consolidated)
            return
        penalty, rest = self.opt_state[0], self.opt_state[1:]
        if cfg.method == "l2":
            penalty = jax.vmap(l2_consolidate)(penalty, self.params)
        else:
            importances = []

            def apply(p, xb):  # one function per task, so all seeds share one compilation
                return _masked(mlp(p, xb), mask)

            for s in range(len(self.seeds)):
                params_s = jax.tree.map(lambda a, s=s: a[s], self.params)
                xs, ys = self._importance_data(index, x, y, s)
                if cfg.method == "mas":
                    importances.append(mas_importance(apply, params_s, xs))
                else:
                    importances.append(fisher_diagonal(apply, params_s, xs, ys, estimator=cfg.fisher_estimator,
                                                       key=jax.random.key(self.seeds[s] * 1000 + index)))
            importance = jax.tree.map(lambda *a: jnp.stack(a), *importances)
            if cfg.method == "ewc":
                penalty = jax.vmap(ewc_consolidate)(penalty, self.params, importance)
            elif cfg.method == "online_ewc":
                penalty = jax.vmap(lambda st, p, f: online_ewc_consolidate(st, p, f, cfg.gamma))(
                    penalty, self.params, importance)
            else:
                penalty = jax.vmap(mas_consolidate)(penalty, self.params, importance)
        if cfg.reset_optimizer:
            rest = (jax.vmap(self.inner.init)(self.params),)
        self.opt_state = replicate(self.mesh, (penalty, *rest))

    def accuracy(self, index: int, task: Task) -> np.ndarray:
        return np.asarray(self._accuracy(self.params, self._inputs(task.test.x), task.test.y,
                                         jnp.asarray(task.output_mask)))
