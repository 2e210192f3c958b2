"""Sequential training of gradient-based continual learners, every seed in one program (``vmap``).

A :class:`SequentialLearner` follows :class:`acljax.eval.protocol.ResumableLearner`: ``reset(seeds)`` draws one
model per seed, ``learn(i, task)`` trains on task i, ``accuracy(i, task)`` tests every seed. What the method does
(an optax transformation, a loss term, a gradient projection, a memory kept between tasks, work at the
end of each task) comes from its :class:`acljax.cl.methods.Method`; the learner knows no method by name.
Task-incremental streams mask the logits to the task's outputs in training and testing (equivalent to one
head per task).
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from acljax.checks import NonFiniteLoss, is_positive_int, require_positive_finite
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
    """How a continual learner trains. method: a :class:`acljax.cl.methods.Method`, which holds its own
    hyper-parameters (``EWC(strength=200.0)``), or a name in :data:`acljax.cl.methods.METHODS` for that method
    with its defaults (normalised to the instance, so ``config.method`` is always a Method). reset_optimizer:
    re-initialise the optimiser's state at each task end, for the methods that wrap it (L2, EWC, online EWC,
    MAS, SI). model: "mlp" (``hidden`` layer sizes) or "conv" (:class:`acljax.cl.models.ConvNet` with
    ``channels``), unless the learner is given a model. num_devices: data-parallel devices for each
    minibatch (None: all of them)."""

    method: Method | str = "naive"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    reset_optimizer: bool = False
    model: str = "mlp"
    hidden: tuple[int, ...] = (400, 400)
    channels: tuple[int, ...] = (32, 32)
    epochs: int = 4
    batch_size: int = 128
    num_devices: int | None = None

    def __post_init__(self):
        if isinstance(self.method, str) and self.method in METHODS:
            object.__setattr__(self, "method", METHODS[self.method]())
        elif not isinstance(self.method, Method):
            raise ValueError(f"SequentialConfig.method must be one of {tuple(METHODS)} or an "
                             f"acljax.cl.methods.Method, got {self.method!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"SequentialConfig.optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.model not in MODELS:
            raise ValueError(f"SequentialConfig.model must be one of {MODELS}, got {self.model!r}")
        require_positive_finite("SequentialConfig", learning_rate=self.learning_rate)
        for name in ("epochs", "batch_size"):
            if not is_positive_int(getattr(self, name)):
                raise ValueError(f"SequentialConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if not all(is_positive_int(h) for h in self.hidden):
            raise ValueError(f"SequentialConfig.hidden must list positive layer widths (e.g. [400, 400]; [] for a "
                             f"linear model), got {list(self.hidden)!r}")
        if not self.channels or not all(is_positive_int(c) for c in self.channels):
            raise ValueError(f"SequentialConfig.channels must list one or more positive channel counts (e.g. [32, "
                             f"32]), got {list(self.channels)!r}")

    @property
    def method_name(self) -> str:
        """Names the method as METHODS does (a method from outside acljax by its class's name)."""
        return next((name for name, kind in METHODS.items() if type(self.method) is kind), type(self.method).__name__)

    def to_dict(self) -> dict:
        """The config as JSON-ready data: the training fields, and under "method" the method's name and fields."""
        method = {f.name: getattr(self.method, f.name) for f in dataclasses.fields(self.method) if f.init}
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.loads(json.dumps({**record, "method": {"name": self.method_name, **method}}, default=_scalar))

    @classmethod
    def from_dict(cls, record: dict) -> SequentialConfig:
        """The config of a :meth:`to_dict` record, or of one in the old flat form (see :func:`migrate_record`)."""
        record = migrate_record(record)
        method = dict(record.get("method", {"name": "naive"}))
        name = method.pop("name", None)
        if name not in METHODS:
            raise ValueError(f"a stored SequentialConfig's method must be one of {tuple(METHODS)}, got {name!r}")
        training = {f.name for f in dataclasses.fields(cls)}
        own = {f.name for f in dataclasses.fields(METHODS[name]) if f.init}
        for owner, keys, accepted in (("SequentialConfig", record, training), (METHODS[name].__name__, method, own)):
            if set(keys) - accepted:
                raise ValueError(f"a stored {owner} has unknown keys {sorted(set(keys) - accepted)}; accepted: "
                                 f"{sorted(accepted)}")
        return cls(**{key: _tupled(value) for key, value in record.items() if key != "method"},
                   method=METHODS[name](**{key: _tupled(value) for key, value in method.items()}))


def migrate_record(record: dict) -> dict:
    """A stored config in :meth:`SequentialConfig.to_dict`'s form. The old flat form (the method's name under
    "method", every method's hyper-parameters beside the training fields) is nested: the named method takes the
    keys that are its fields, as the old config passed them on; other methods' keys are dropped. Other records
    are returned as they are."""
    name = record.get("method", "naive")
    if not isinstance(name, str):
        return record
    own = {f.name for f in dataclasses.fields(METHODS[name]) if f.init} if name in METHODS else set()
    any_method = {f.name for kind in METHODS.values() for f in dataclasses.fields(kind)}
    training = {f.name for f in dataclasses.fields(SequentialConfig)}
    return {**{key: value for key, value in record.items() if key in training or key not in any_method},
            "method": {"name": name, **{key: value for key, value in record.items() if key in own}}}


def _scalar(value):
    """A numpy or JAX scalar (which the methods' checks accept) as the Python number JSON stores."""
    if getattr(value, "shape", None) == ():
        return value.item()
    raise TypeError(f"{value!r} cannot be stored as JSON")


def _tupled(value):
    """A JSON list back as the tuple it was stored from."""
    return tuple(value) if isinstance(value, list) else value


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
        self.method = method = config.method.for_inputs(self.mean, self.std)
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
        bar = tqdm(total=cfg.epochs * per_epoch, desc=f"{cfg.method_name} task {index}",
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
