"""Deep generative replay (DGR, Shin et al. 2017): a variational autoencoder learns the inputs of every task so
far and replays them, labelled by the previous solver.

Parameters: the solver (the learner's model) and a VAE (MLP encoder and decoder on the flattened input,
Gaussian likelihood with unit variance on the normalised pixels). Each step trains both on the current
batch and on as many replayed inputs, decoded from N(0, I) by the generator as it was at the last task end
and labelled by the argmax of the solver as it was then (over the earlier tasks' outputs); the current part
weighs 1/t and the replayed part 1 - 1/t in the t-th task (Shin et al.'s ratio). At a task end the memory
becomes a copy of both networks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy, masked, require_positive_ints
from acljax.cl.models import Model, init_mlp, mlp


class Snapshot(NamedTuple):
    """The solver and generator at the last task end, and how many tasks they have learned (a float)."""

    params: dict
    tasks: jax.Array


def vae_init(key: jax.Array, num_inputs: int, hidden: int, latent: int) -> dict:
    """Encoder num_inputs -> hidden -> (mean, log variance) of the latent; decoder latent -> hidden -> inputs."""
    encoder_key, decoder_key = jax.random.split(key)
    return {"encoder": init_mlp(encoder_key, (num_inputs, hidden, 2 * latent)),
            "decoder": init_mlp(decoder_key, (latent, hidden, num_inputs))}


def vae_loss(params: dict, x: jax.Array, key: jax.Array) -> jax.Array:
    """Negative ELBO per example (B,) of x (B, ...): 0.5 |x - decoder(z)|^2 (Gaussian likelihood with unit
    variance, constant dropped), z = mean + exp(log variance / 2) * eps, plus KL(q(z|x) || N(0, I))."""
    flat = x.reshape(len(x), -1)
    mean, log_var = jnp.split(mlp(params["encoder"], flat), 2, axis=-1)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    reconstruction = 0.5 * jnp.sum((flat - mlp(params["decoder"], z)) ** 2, -1)
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, -1)
    return reconstruction + kl


def vae_sample(params: dict, key: jax.Array, n: int, input_shape) -> jax.Array:
    """n inputs decoded from z ~ N(0, I): (n, *input_shape)."""
    latent = params["decoder"][0]["w"].shape[0]
    return mlp(params["decoder"], jax.random.normal(key, (n, latent))).reshape(n, *input_shape)


@dataclasses.dataclass(frozen=True)
class DGR(Method):
    """latent, vae_hidden: the VAE's sizes (van de Ven & Tolias used 100 and 400 on MNIST)."""

    latent: int = 100
    vae_hidden: int = 400

    def __post_init__(self):
        require_positive_ints(self, "latent", "vae_hidden")

    def init_params(self, model: Model, key, input_shape, num_outputs):
        solver_key, vae_key = jax.random.split(key)
        return {"solver": model.init(solver_key),
                "vae": vae_init(vae_key, math.prod(input_shape), self.vae_hidden, self.latent)}

    def init_memory(self, params, input_shape, num_outputs):
        return Snapshot(params, jnp.zeros(()))

    def apply(self, model, params, memory, x, task, training):
        return model.apply(params["solver"], x)

    def loss(self, apply, params, memory: Snapshot, x, y, masks: Masks, key):
        encode_key, sample_key, replay_key = jax.random.split(key, 3)
        current = cross_entropy(apply, params, x, y, masks.current).mean() + vae_loss(params["vae"], x,
                                                                                      encode_key).mean()
        replayed = jax.lax.stop_gradient(vae_sample(memory.params["vae"], sample_key, len(x), x.shape[1:]))
        labels = jnp.argmax(masked(apply(memory.params, replayed), masks.previous), -1)
        replay = cross_entropy(apply, params, replayed, labels, masks.of_label[labels]).mean() + vae_loss(
            params["vae"], replayed, replay_key).mean()
        new_weight = 1.0 / (memory.tasks + 1.0)  # 1 in the first task: no replay yet
        return new_weight * current + (1.0 - new_weight) * replay

    def end_task(self, end: TaskEnd):
        return end.opt_state, Snapshot(end.params, end.memory.tasks + 1.0)

    def samples(self, params, key: jax.Array, n: int, input_shape) -> jax.Array:
        """n inputs from one seed's generator, (n, *input_shape), in normalised units."""
        return vae_sample(params["vae"], key, n, input_shape)


def _relu_layers(layers: list[dict], h: jax.Array) -> jax.Array:
    for layer in layers:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h


@dataclasses.dataclass(frozen=True)
class RtF(Method):
    """Replay through feedback (van de Ven & Tolias 2018): the classifier is the VAE's encoder with a softmax
    head, so one network learns and generates. Encoder: the flattened input through ``hidden`` ReLU layers;
    from its top, the class logits and the latent's mean and log variance; decoder: the latent through the
    same widths reversed. Replayed inputs come from the network as it was at the last task end, with its
    softened outputs (``temperature``) as targets (distillation over the earlier tasks' outputs). The
    network is its own: the learner's model is not used."""

    latent: int = 100
    hidden: tuple[int, ...] = (400, 400)
    temperature: float = 2.0

    def __post_init__(self):
        require_positive_ints(self, "latent")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive ints, got {self.hidden!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    def init_params(self, model: Model, key, input_shape, num_outputs):
        keys = jax.random.split(key, 4)
        widths = (math.prod(input_shape), *self.hidden)
        return {"encoder": init_mlp(keys[0], widths), "classifier": init_mlp(keys[1], (widths[-1], num_outputs)),
                "latent": init_mlp(keys[2], (widths[-1], 2 * self.latent)),
                "decoder": init_mlp(keys[3], (self.latent, *widths[::-1]))}

    def apply(self, model, params, memory, x, task, training):
        return mlp(params["classifier"], _relu_layers(params["encoder"], x.reshape(len(x), -1)))

    def _vae_loss(self, params, x, key):
        """As :func:`vae_loss`, through the shared encoder."""
        return vae_loss({"encoder": [*params["encoder"], *params["latent"]], "decoder": params["decoder"]}, x, key)

    def loss(self, apply, params, memory: Snapshot, x, y, masks: Masks, key):
        encode_key, sample_key, replay_key = jax.random.split(key, 3)
        current = cross_entropy(apply, params, x, y, masks.current).mean() + self._vae_loss(params, x,
                                                                                              encode_key).mean()
        replayed = jax.lax.stop_gradient(self.samples(memory.params, sample_key, len(x), x.shape[1:]))
        t = self.temperature
        teacher = jax.nn.log_softmax(masked(apply(memory.params, replayed), masks.previous) / t)
        student = jax.nn.log_softmax(masked(apply(params, replayed), masks.previous) / t)
        distill = t**2 * jnp.mean(jnp.sum(jnp.exp(teacher) * (teacher - student), -1))
        replay = distill + self._vae_loss(params, replayed, replay_key).mean()
        new_weight = 1.0 / (memory.tasks + 1.0)
        return new_weight * current + (1.0 - new_weight) * replay

    def init_memory(self, params, input_shape, num_outputs):
        return Snapshot(params, jnp.zeros(()))

    def end_task(self, end: TaskEnd):
        return end.opt_state, Snapshot(end.params, end.memory.tasks + 1.0)

    def samples(self, params, key, n, input_shape):
        return vae_sample({"decoder": params["decoder"]}, key, n, input_shape)
