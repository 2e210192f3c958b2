"""Sequential training of gradient-based continual learners, every seed in one program (``vmap``).

A :class:`SequentialLearner` follows :mod:`acljax.eval.protocol`: ``reset(seeds)`` draws one model per
seed, ``learn(i, task)`` trains on task i, ``accuracy(i, task)`` tests every seed. What the method does
(an optax transformation, a loss term, a gradient projection, a memory kept between tasks, work at the
end of each task) comes from its :class:`acljax.cl.methods.Method`; the learner knows no method by name.
Task-incremental streams mask the logits to the task's outputs in training and testing (equivalent to one
head per task).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from acljax.checks import NonFiniteLoss, is_positive_int, require_finite, require_positive_finite
from acljax.cl.methods import METHODS, Masks, Method, TaskEnd, masked
from acljax.cl.models import MODELS, Model, conv_model, mlp_model
from acljax.data.streams import Task
from acljax.distributed import local_rows, make_mesh, replicate, shard_batch

OPTIMIZERS = {  # PyTorch's defaults, which the published baselines used (optax's Adagrad starts its sum at 0.1)
    "sgd": optax.sgd, "adam": optax.adam,
    "adagrad": lambda lr: optax.adagrad(lr, initial_accumulator_value=0.0, eps=1e-10),
}


@dataclasses.dataclass(frozen=True)
class SequentialConfig:
    """method: a name in :data:`acljax.cl.methods.METHODS`, built from this config's fields of the same names, or a
    :class:`acljax.cl.methods.Method` instance (which carries its own hyper-parameters). strength in acljax's
    convention (penalty = strength/2 sum I (theta - a)^2; for LwF the distillation weight);
    importance_samples: examples of the task used for Fisher / MAS importances (None: every training example
    of the task, as Hsu et al.). Replay and A-GEM keep ``memory_size`` examples (``buffer``: "reservoir" or
    "class_balanced"), filled at the end of each task, and read ``memory_batch`` of them per step (so do
    ER-ACE and DER++, whose logit and label terms weigh ``alpha`` and ``beta``); GEM keeps
    ``memory_size // max_tasks`` examples of each task and projects with ``margin``; LoRA trains a rank-``rank``
    delta per task, Adapters a ``bottleneck``-wide adapter per task, Experts a network per task, routed by
    ``routing``, TaskTokens a token per task for its own SRWM network (``features`` wide, ``heads`` heads);
    DGR replays from a VAE (``latent``, ``vae_hidden`` layer widths, ``likelihood`` of the
    inputs; RtF's VAE is its classifier, ``hidden``); LwF distils the previous model's outputs at
    ``temperature``. model: "mlp" (``hidden`` layer sizes) or "conv"
    (:class:`acljax.cl.models.ConvNet` with ``channels``), unless the learner is given a model."""

    method: str | Method = "naive"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    strength: float = 0.0
    gamma: float = 1.0
    xi: float = 0.1
    fisher_estimator: str = "empirical"
    importance_samples: int | None = None
    reset_optimizer: bool = False
    model: str = "mlp"
    hidden: tuple[int, ...] = (400, 400)
    channels: tuple[int, ...] = (32, 32)
    epochs: int = 4
    batch_size: int = 128
    num_devices: int | None = None  # data-parallel devices for each minibatch; None: all of them
    memory_size: int = 1000
    memory_batch: int = 128
    buffer: str = "reservoir"
    max_tasks: int = 10
    alpha: float = 0.2  # Buzzega et al.'s best on Seq-CIFAR-10 with 500 stored examples (their code)
    beta: float = 0.5
    margin: float = 0.5
    rank: int = 4
    bottleneck: int = 16
    routing: str = "task_id"
    features: int = 64
    heads: int = 4
    latent: int = 100
    vae_hidden: tuple[int, ...] = (400, 400)
    likelihood: str = "bernoulli"
    temperature: float = 2.0

    def __post_init__(self):
        if not isinstance(self.method, Method) and self.method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)} or an acljax.cl.methods.Method, got "
                             f"{self.method!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        require_positive_finite("SequentialConfig", learning_rate=self.learning_rate, temperature=self.temperature)
        require_finite("SequentialConfig", strength=self.strength, xi=self.xi, gamma=self.gamma, margin=self.margin,
                       alpha=self.alpha, beta=self.beta)
        for name in ("epochs", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not all(is_positive_int(h) for h in self.hidden):
            raise ValueError(f"hidden must list positive layer widths (e.g. [400, 400]; [] for a linear model), got "
                             f"{list(self.hidden)!r}")
        if not self.channels or not all(is_positive_int(c) for c in self.channels):
            raise ValueError(f"channels must list one or more positive channel counts (e.g. [32, 32]), got "
                             f"{list(self.channels)!r}")
        self.build_method()  # the method checks its own fields

    def build_method(self) -> Method:
        if isinstance(self.method, Method):
            return self.method
        return METHODS[self.method].from_config(self)


class SequentialLearner:
    """config: the method and training; num_outputs: K; input_shape: one example's (H, W, C); mean, std:
    input normalisation; model: any :class:`acljax.cl.models.Model` (:func:`acljax.cl.models.nnx_model` wraps
    a Flax NNX module), else the config's "mlp" or "conv"."""

    runs_all_seeds = True

    def __init__(self, config: SequentialConfig, num_outputs: int, input_shape: tuple[int, ...], mean, std,
                 progress: bool = True, model: Model | None = None):
        self.config, self.progress = config, progress
        self.num_outputs, self.input_shape = num_outputs, tuple(input_shape)
        if model is None:
            model = mlp_model(input_shape, config.hidden, num_outputs) if config.model == "mlp" else \
                conv_model(input_shape, num_outputs, config.channels)
        self.model = model
        self.mean, self.std = np.float32(mean), np.float32(std)
        self.method = method = config.build_method().for_inputs(self.mean, self.std)
        self.inner = OPTIMIZERS[config.optimizer](config.learning_rate)
        self.tx = method.optimizer(self.inner)

        def step(params, opt_state, memory, x, y, masks, key, task):
            def apply(p, inputs):
                return method.apply(model, p, memory, inputs, task, True)

            loss, grads = jax.value_and_grad(lambda p: method.loss(apply, p, memory, x, y, masks, key))(params)
            grads = method.adjust_gradients(apply, params, memory, grads, masks, key)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self._step = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, 0, None, 0, None)))
        self.mesh = make_mesh(config.num_devices)  # minibatches split over its data axis, parameters replicated

        def accuracy(params, memory, x, y, mask, task):
            return jnp.mean(jnp.argmax(masked(method.apply(model, params, memory, x, task, False), mask), -1) == y)

        self._accuracy = jax.jit(jax.vmap(accuracy, in_axes=(0, 0, None, None, None, None)))
        self._keys = jax.jit(jax.vmap(lambda seed, index, step: jax.random.fold_in(
            jax.random.fold_in(jax.random.key(seed), index), step), in_axes=(0, None, None)))
        self.seen: list[Task] = []

    def bytes_per_seed(self) -> int:
        """A lower bound on one seed's memory in training, from shapes alone (nothing is allocated or compiled):
        what its training step holds at once at the least, its parameters, optimiser state and memory (a replay
        buffer, a teacher), the minibatch, and the gradients (one more copy of the parameters). Activations, the
        new state before the old one is freed and the test-time forward come on top."""
        key = jax.random.key(0)
        params = jax.eval_shape(lambda k: self.method.init_params(self.model, k, self.input_shape, self.num_outputs),
                                key)
        opt_state = jax.eval_shape(self.tx.init, params)
        memory = jax.eval_shape(lambda p: self.method.init_memory(p, self.input_shape, self.num_outputs), params)
        batch = (jax.ShapeDtypeStruct((self.config.batch_size, *self.input_shape), jnp.float32),
                 jax.ShapeDtypeStruct((self.config.batch_size,), jnp.int32))
        held = (params, params, opt_state, memory, batch)  # params twice: the parameters and their gradients
        return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(held))

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) * np.float32(1 / 255) - self.mean) / self.std

    def reset(self, seeds: list[int]) -> None:
        self.seeds = list(seeds)
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        params = jax.vmap(lambda k: self.method.init_params(self.model, k, self.input_shape, self.num_outputs))(keys)
        self.params = replicate(self.mesh, params)
        self.opt_state = replicate(self.mesh, jax.vmap(self.tx.init)(self.params))
        self.memory = replicate(self.mesh, jax.vmap(
            lambda p: self.method.init_memory(p, self.input_shape, self.num_outputs))(self.params))
        self.seen = []
        self.label_masks = np.ones((self.num_outputs,) * 2, bool)  # row l: the outputs of the task that owns label l
        self.samples: list[np.ndarray] = []  # generative methods: (16, *input_shape) in [0, 1] after each task

    def state(self) -> dict:
        """Every seed's parameters, optimiser state and memory, the label masks and, for a generative method,
        its samples so far (after ``reset``: placeholders of the right kinds for a restore)."""
        state = {"params": self.params, "opt_state": self.opt_state, "memory": self.memory,
                 "label_masks": self.label_masks}
        one_seed = jax.tree.map(lambda a: a[0], self.params)
        if jax.eval_shape(lambda p: self.method.samples(p, jax.random.key(0), 16, self.input_shape), one_seed):
            state["samples"] = np.stack(self.samples) if self.samples else np.zeros((1, 16, *self.input_shape),
                                                                                    np.float32)
        return state

    def restore(self, state: dict, learned: list[Task]) -> None:
        """Go on from :meth:`state` saved after learning ``learned`` (with the seeds of the last ``reset``)."""
        self.params, self.opt_state, self.memory = (replicate(self.mesh, state[k]) for k in
                                                    ("params", "opt_state", "memory"))
        self.label_masks = np.array(state["label_masks"])
        self.samples = list(np.asarray(state["samples"])) if "samples" in state else []
        self.seen = list(learned)

    def learn(self, index: int, task: Task) -> None:
        cfg = self.config
        self.seen.append(task)
        training = self.method.training_tasks(self.seen)
        x = self._inputs(np.concatenate([t.train.x for t in training]))
        y = np.concatenate([t.train.y for t in training])
        mask = jnp.asarray(np.any([t.output_mask for t in training], axis=0))
        previous_outputs = np.any([t.output_mask for t in self.seen[:-1]], axis=0) if index else \
            np.zeros(self.num_outputs, bool)
        self.label_masks[np.unique(task.train.y)] = task.output_mask
        masks = Masks(mask, jnp.asarray(self.label_masks), jnp.asarray(previous_outputs))
        per_epoch = len(y) // cfg.batch_size
        if per_epoch == 0:
            raise ValueError(f"task {index} ({task.name}) has {len(y)} training examples, fewer than "
                             f"SequentialConfig.batch_size={cfg.batch_size}: lower batch_size")
        seeds = jnp.asarray(self.seeds)
        rows = local_rows(cfg.batch_size, self.mesh)  # this process's part of each minibatch
        name = cfg.method if isinstance(cfg.method, str) else type(cfg.method).__name__
        bar = tqdm(total=cfg.epochs * per_epoch, desc=f"{name} task {index}",
                   disable=not self.progress, leave=False)
        for epoch in range(cfg.epochs):
            order = np.stack([np.random.default_rng([s, index, epoch]).permutation(len(y)) for s in self.seeds])
            for b in range(per_epoch):
                idx = order[:, b * cfg.batch_size:(b + 1) * cfg.batch_size][:, rows]  # (S, batch): a shuffle per seed
                xb, yb = shard_batch(self.mesh, (x[idx], y[idx]), axis=1)
                self.params, self.opt_state, loss = self._step(
                    self.params, self.opt_state, self.memory, xb, yb, masks,
                    self._keys(seeds, index, epoch * per_epoch + b), jnp.int32(index))
                bar.update()
            if not np.isfinite(np.asarray(loss)).all():
                raise NonFiniteLoss(f"task {index}, epoch {epoch} (seeds {self.seeds})")
            bar.set_postfix(loss=f"{float(loss.mean()):.3f}")
        bar.close()

        def apply(p, memory, inputs):  # one seed, as trained on this task
            return self.method.apply(self.model, p, memory, inputs, jnp.int32(index), True)

        end = TaskEnd(index, self.seeds, apply, self.params, self.opt_state, self.memory, x, y, mask,
                      self._keys(seeds, index, 2**31 - 1), self.inner if cfg.reset_optimizer else None, self.tx)
        opt_state, memory = self.method.end_task(end)
        self.opt_state, self.memory = replicate(self.mesh, opt_state), replicate(self.mesh, memory)
        samples = self.method.samples(jax.tree.map(lambda a: a[0], self.params), jax.random.key(index), 16,
                                      self.input_shape)
        if samples is not None:  # what the first seed's generator makes after this task, in pixel units
            self.samples.append(np.clip(np.asarray(samples) * self.std + self.mean, 0, 1))

    def accuracy(self, index: int, task: Task) -> np.ndarray:
        return np.asarray(self._accuracy(self.params, self.memory, self._inputs(task.test.x), task.test.y,
                                         jnp.asarray(task.output_mask), jnp.int32(index)))
