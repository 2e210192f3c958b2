"""Generative replay: DGR (Shin et al. 2017) and replay through feedback (RtF, van de Ven & Tolias 2018).

Both keep a variational autoencoder of the inputs of every task so far and, from the second task on, train
each step on the current batch and on as many inputs decoded from N(0, I) by the network as it was at the
last task end; the current part weighs 1/t and the replayed part 1 - 1/t in the t-th task (Shin et al.'s
ratio). The VAE's loss is the negative ELBO per input value (reconstruction and KL both divided by the number
of input values, as van de Ven & Tolias), so a classifier's cross-entropy keeps its weight beside it.
Likelihood "bernoulli" (their choice on MNIST): the decoder's outputs are logits of the pixels in [0, 1],
un-normalised from the learner's inputs; "gaussian": unit variance on the normalised inputs (their choice for
natural images).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from acljax.checks import is_finite_number
from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy, masked, require_positive_ints
from acljax.cl.models import Model, init_mlp, mlp

LIKELIHOODS = ("bernoulli", "gaussian")


class Snapshot(NamedTuple):
    """The networks at the last task end, and how many tasks they have learned (a float)."""

    params: dict
    tasks: jax.Array


class Pixels(NamedTuple):
    """How the learner normalised its inputs: x = (pixels - mean) / std, pixels in [0, 1]."""

    mean: np.ndarray | float = 0.0
    std: np.ndarray | float = 1.0


UNNORMALISED = Pixels()  # inputs that are the pixels themselves


def vae_init(key: jax.Array, num_inputs: int, hidden: tuple[int, ...], latent: int) -> dict:
    """Encoder num_inputs -> hidden... -> (mean, log variance) of the latent; decoder latent -> reversed hidden
    -> num_inputs; ReLU between layers."""
    encoder_key, decoder_key = jax.random.split(key)
    return {"encoder": init_mlp(encoder_key, (num_inputs, *hidden, 2 * latent)),
            "decoder": init_mlp(decoder_key, (latent, *hidden[::-1], num_inputs))}


def vae_loss(params: dict, x: jax.Array, key: jax.Array, likelihood: str = "bernoulli",
             pixels: Pixels = UNNORMALISED) -> jax.Array:
    """Negative ELBO per input value (B,) of normalised inputs x (B, ...): the reconstruction term (Bernoulli:
    cross-entropy of the decoder's logits with the pixels x * std + mean; Gaussian: 0.5 |x - decoder(z)|^2,
    constant dropped) at z = mean + exp(log variance / 2) * eps, plus KL(q(z|x) || N(0, I)), divided by the
    number of input values."""
    flat = x.reshape(len(x), -1)
    mean, log_var = jnp.split(mlp(params["encoder"], flat), 2, axis=-1)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    decoded = mlp(params["decoder"], z)
    if likelihood == "bernoulli":
        targets = (x * pixels.std + pixels.mean).reshape(len(x), -1)
        reconstruction = jnp.sum(optax.sigmoid_binary_cross_entropy(decoded, targets), -1)
    else:
        reconstruction = 0.5 * jnp.sum((flat - decoded) ** 2, -1)
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, -1)
    return (reconstruction + kl) / flat.shape[-1]


def vae_sample(params: dict, key: jax.Array, n: int, input_shape, likelihood: str = "bernoulli",
               pixels: Pixels = UNNORMALISED) -> jax.Array:
    """n normalised inputs (n, *input_shape): the decoder's means at z ~ N(0, I)."""
    latent = params["decoder"][0]["w"].shape[0]
    decoded = mlp(params["decoder"], jax.random.normal(key, (n, latent))).reshape(n, *input_shape)
    if likelihood == "bernoulli":
        return (jax.nn.sigmoid(decoded) - pixels.mean) / pixels.std
    return decoded


def seen_outputs(masks: Masks, y: jax.Array) -> jax.Array:
    """(K,) the outputs of classes seen so far: the earlier tasks' and the current batch's labels (van de Ven &
    Tolias's "active classes": in class-IL no loss reaches the outputs of classes still to come)."""
    return masks.previous | jnp.zeros_like(masks.previous).at[y].set(True)


def replay_distillation(teacher: jax.Array, student: jax.Array, masks: Masks, temperature: float) -> jax.Array:
    """Per replayed input (B,): t^2 x the cross-entropy between the teacher's softened outputs (logits (B, K))
    and the student's, over the outputs of the task that owns the teacher's likeliest earlier output (one head
    in task-IL, every output otherwise); outputs learned after the teacher get target probability 0."""
    t = temperature
    head = masks.of_label[jnp.argmax(masked(teacher, masks.previous), -1)]  # (B, K)
    targets = jax.nn.softmax(masked(teacher, head & masks.previous) / t)
    return t**2 * optax.softmax_cross_entropy(masked(student, head) / t, targets)


@dataclasses.dataclass(frozen=True)
class GenerativeReplay(Method):
    """What DGR and RtF share: the latent size, the likelihood and the learner's input normalisation."""

    latent: int = 100
    likelihood: str = "bernoulli"
    pixels: Pixels = dataclasses.field(default=UNNORMALISED, init=False, repr=False)  # set by for_inputs

    def __post_init__(self):
        require_positive_ints(self, "latent")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"{type(self).__name__}.likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")

    def for_inputs(self, mean, std) -> GenerativeReplay:
        method = copy.copy(self)
        object.__setattr__(method, "pixels", Pixels(np.asarray(mean, np.float32), np.asarray(std, np.float32)))
        return method

    def init_memory(self, params, input_shape, num_outputs):
        return Snapshot(params, jnp.zeros(()))

    def end_task(self, end: TaskEnd):
        return end.opt_state, Snapshot(end.params, end.memory.tasks + 1.0)

    def _vae_loss(self, vae: dict, x, key) -> jax.Array:
        return vae_loss(vae, x, key, self.likelihood, self.pixels)

    def _sample(self, vae: dict, key, n: int, input_shape) -> jax.Array:
        return vae_sample(vae, key, n, input_shape, self.likelihood, self.pixels)


@dataclasses.dataclass(frozen=True)
class DGR(GenerativeReplay):
    """A VAE (``vae_hidden`` layer widths, ``latent`` dimensions; van de Ven & Tolias used 400, 400 and 100 on
    MNIST) beside the solver (the learner's model). Replayed inputs are labelled by the argmax of the solver
    as it was at the last task end (over the earlier tasks' outputs); both networks train on the current and
    the replayed batch."""

    vae_hidden: tuple[int, ...] = (400, 400)

    def __post_init__(self):
        super().__post_init__()
        if not self.vae_hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.vae_hidden):
            raise ValueError(f"DGR.vae_hidden must be a non-empty sequence of positive ints, got {self.vae_hidden!r}")

    def init_params(self, model: Model, key, input_shape, num_outputs):
        solver_key, vae_key = jax.random.split(key)
        return {"solver": model.init(solver_key),
                "vae": vae_init(vae_key, math.prod(input_shape), tuple(self.vae_hidden), self.latent)}

    def apply(self, model, params, memory, x, task, training):
        return model.apply(params["solver"], x)

    def loss(self, apply, params, memory: Snapshot, x, y, masks: Masks, key):
        encode_key, sample_key, replay_key = jax.random.split(key, 3)
        active = seen_outputs(masks, y)
        current = cross_entropy(apply, params, x, y, masks.current & active).mean() + self._vae_loss(
            params["vae"], x, encode_key).mean()
        replayed = jax.lax.stop_gradient(self._sample(memory.params["vae"], sample_key, len(x), x.shape[1:]))
        labels = jnp.argmax(masked(apply(memory.params, replayed), masks.previous), -1)
        replay = cross_entropy(apply, params, replayed, labels, masks.of_label[labels] & active).mean() + \
            self._vae_loss(params["vae"], replayed, replay_key).mean()
        new_weight = 1.0 / (memory.tasks + 1.0)  # 1 in the first task: no replay yet
        return new_weight * current + (1.0 - new_weight) * replay

    def samples(self, params, key: jax.Array, n: int, input_shape) -> jax.Array:
        """n inputs from one seed's generator, ``(n, *input_shape)``, normalised as the learner's inputs."""
        return self._sample(params["vae"], key, n, input_shape)


def _relu_layers(layers: list[dict], h: jax.Array) -> jax.Array:
    for layer in layers:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h


@dataclasses.dataclass(frozen=True)
class RtF(GenerativeReplay):
    """Replay through feedback (van de Ven & Tolias 2018): the classifier is the VAE's encoder with a softmax
    head, so one network learns and generates. Encoder: the flattened input through ``hidden`` ReLU layers;
    from its top, the class logits and the latent's mean and log variance; decoder: the latent through the
    same widths reversed. Replayed inputs come from the network as it was at the last task end, with its
    softened outputs (``temperature``) as targets: over the outputs of the task its likeliest output belongs
    to (one head in task-IL, every output otherwise), the earlier tasks' outputs holding the teacher's
    probabilities and the outputs learned since holding 0, as van de Ven & Tolias's distillation (so replay
    also teaches that old inputs are not new classes). The network is its own: the learner's model is not
    used."""

    hidden: tuple[int, ...] = (400, 400)
    temperature: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"RtF.hidden must be a non-empty sequence of positive ints, got {self.hidden!r}")
        if not is_finite_number(self.temperature) or not self.temperature > 0:
            raise ValueError(f"RtF.temperature must be a finite number > 0, got {self.temperature!r}")

    def init_params(self, model: Model, key, input_shape, num_outputs):
        keys = jax.random.split(key, 4)
        widths = (math.prod(input_shape), *self.hidden)
        return {"encoder": init_mlp(keys[0], widths), "classifier": init_mlp(keys[1], (widths[-1], num_outputs)),
                "latent": init_mlp(keys[2], (widths[-1], 2 * self.latent)),
                "decoder": init_mlp(keys[3], (self.latent, *widths[::-1]))}

    def apply(self, model, params, memory, x, task, training):
        return mlp(params["classifier"], _relu_layers(params["encoder"], x.reshape(len(x), -1)))

    @staticmethod
    def _vae(params) -> dict:
        """The VAE inside the network: the shared encoder with the latent layer on top, and the decoder."""
        return {"encoder": [*params["encoder"], *params["latent"]], "decoder": params["decoder"]}

    def loss(self, apply, params, memory: Snapshot, x, y, masks: Masks, key):
        encode_key, sample_key, replay_key = jax.random.split(key, 3)
        active = seen_outputs(masks, y)
        current = cross_entropy(apply, params, x, y, masks.current & active).mean() + self._vae_loss(
            self._vae(params), x, encode_key).mean()
        replayed = jax.lax.stop_gradient(self.samples(memory.params, sample_key, len(x), x.shape[1:]))
        distill = replay_distillation(apply(memory.params, replayed), apply(params, replayed),
                                      masks._replace(of_label=masks.of_label & active), self.temperature)
        replay = distill.mean() + self._vae_loss(self._vae(params), replayed, replay_key).mean()
        new_weight = 1.0 / (memory.tasks + 1.0)
        return new_weight * current + (1.0 - new_weight) * replay

    def samples(self, params, key, n, input_shape):
        return self._sample({"decoder": params["decoder"]}, key, n, input_shape)
