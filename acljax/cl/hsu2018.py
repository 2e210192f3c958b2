"""Hsu et al. 2018 ("Re-evaluating continual learning scenarios"): their Split-MNIST training protocol for the
classic baselines, each method's configuration with their strengths, and their published Table 2.

MLP 784-400-400, 4 epochs per task, batch 128, Adam 1e-3 (SGD/Adagrad 0.01); strengths converted (their loss
has no 1/2, so strength = 2 x theirs); EWC's Fisher from the argmax label; online EWC with gamma = 1, SI with
xi = 0.1, LwF with weight 1 and temperature 2; naive rehearsal with 1,100 stored examples ("-C": 4,400); GEM as
in their code (SGD 0.01, margin 0.5); DGR and RtF as van de Ven & Tolias ran them.
"""

from __future__ import annotations

import dataclasses

from acljax.cl.methods import AGEM, DGR, ERACE, EWC, GEM, L2, MAS, SI, DERpp, Joint, LwF, Method, OnlineEWC, Replay, RtF
from acljax.cl.trainer import SequentialConfig

SCENARIOS = ("task", "domain", "class")  # Hsu et al.'s, 5 tasks
STREAMS = {**{s: (s, 5) for s in SCENARIOS}, "class2": ("class", 2)}  # --scenarios name -> (scenario, tasks)
LABELS = {"task": "task-IL", "domain": "domain-IL", "class": "class-IL", "class2": "class-IL 2 tasks"}
PUBLISHED = {  # Hsu et al. 2018, Table 2: accuracy (%) over all tasks after the last, mean of 10 runs
    "Adam": (93.46, 55.16, 19.71), "SGD": (97.98, 63.20, 19.46), "Adagrad": (98.06, 58.08, 19.82),
    "L2": (98.18, 66.00, 22.52), "EWC": (97.70, 58.85, 19.80), "Online EWC": (98.04, 57.33, 19.77),
    "SI": (98.56, 64.76, 19.67), "MAS": (99.22, 68.57, 19.52), "LwF": (99.60, 71.02, 24.17),
    "Naive rehearsal": (99.40, 95.16, 90.78), "Naive rehearsal-C": (99.57, 97.11, 95.59),
    "GEM": (98.42, 96.16, 92.20), "DGR": (99.47, 95.74, 91.24), "RtF": (99.66, 97.31, 92.56),
    "Offline": (99.52, 98.59, 97.53),
}
THEIR_STRENGTHS = {"L2": (0.01, 0.5, 100), "EWC": (100, 100, 600), "Online EWC": (400, 700, 100),
                   "SI": (300, 3000, 600), "MAS": (1, 10000, 1)}
METHODS = {  # name -> (the method, training fields); strengths per scenario: THEIR_STRENGTHS
    "Adam": (Method(), dict(optimizer="adam", learning_rate=1e-3)),
    "SGD": (Method(), dict(optimizer="sgd", learning_rate=0.01)),
    "Adagrad": (Method(), dict(optimizer="adagrad", learning_rate=0.01)),
    "L2": (L2(), {}), "EWC": (EWC(fisher_estimator="argmax"), {}),
    "Online EWC": (OnlineEWC(gamma=1.0, fisher_estimator="argmax"), {}),
    "SI": (SI(xi=0.1), {}), "MAS": (MAS(), {}),
    "LwF": (LwF(strength=1.0, temperature=2.0), {}),
    "Naive rehearsal": (Replay(memory_size=1100, memory_batch=128), {}),
    "Naive rehearsal-C": (Replay(memory_size=4400, memory_batch=128), {}),
    "A-GEM": (AGEM(memory_size=1100, memory_batch=256), {}),
    "GEM": (GEM(memory_size=1100, max_tasks=5, margin=0.5), dict(optimizer="sgd", learning_rate=0.01)),
    "ER-ACE": (ERACE(memory_size=1100, memory_batch=128), {}),
    "DER++": (DERpp(memory_size=1100, memory_batch=128, alpha=0.2, beta=0.5), {}),
    # van de Ven & Tolias 2018's Split-MNIST settings, whose numbers Hsu et al. list: Adam 1e-3, 2,000
    # iterations of batch 128 per task (21 epochs of a 12,000-image task), a VAE with two hidden layers of 400
    # units (encoder and decoder) and 100 latent dimensions, a Bernoulli likelihood of the pixels
    "DGR": (DGR(latent=100, vae_hidden=(400, 400), likelihood="bernoulli"), dict(learning_rate=1e-3, epochs=21)),
    "RtF": (RtF(latent=100, hidden=(400, 400), temperature=2.0, likelihood="bernoulli"),
            dict(learning_rate=1e-3, epochs=21)),
    "Offline": (Joint(), {}),
}


def config_for(name: str, scenario: str, importance_samples: int | None = None) -> SequentialConfig:
    """``name``'s config for ``scenario`` (a key of STREAMS); ``importance_samples`` for Fisher/MAS methods."""
    method, training = METHODS[name]
    if name in THEIR_STRENGTHS:
        theirs = THEIR_STRENGTHS[name][SCENARIOS.index(STREAMS[scenario][0])]
        method = dataclasses.replace(method, strength=2.0 * theirs)
    if hasattr(method, "importance_samples"):
        method = dataclasses.replace(method, importance_samples=importance_samples)
    return SequentialConfig(method=method, **training)


