"""The SRWM options as one frozen value: built once (a module argument, ``ModelConfig.srwm``), passed down whole."""

from __future__ import annotations

import dataclasses
from typing import Literal

from acljax.checks import FINITE_NUMBER, OPTIONAL_POSITIVE_INT, check_arguments, is_positive_int, one_of
from acljax.srwm.api import IMPLEMENTATIONS, Impl
from acljax.srwm.state import STATE_GRADIENTS
from acljax.srwm.step import PRECISIONS, Precision

StateGradient = Literal["exact", "official"]

# field -> (accepts(value), what is accepted)
OPTION_CHECKS = {
    "n_beta": (lambda v: is_positive_int(v) and v in (1, 4), "1 (one shared learning rate) or 4 (one per block)"),
    **dict.fromkeys(("init_scale", "q_init_scale", "beta_init"), FINITE_NUMBER),
    "impl": (lambda v: v == "auto" or isinstance(v, str) and v in IMPLEMENTATIONS,
             f"'auto' or one of {sorted(IMPLEMENTATIONS)}"),
    "chunk_size": OPTIONAL_POSITIVE_INT,
    "input_softmax": (lambda v: isinstance(v, bool), "True or False"),
    "state_gradient": one_of(STATE_GRADIENTS),
    "precision": one_of(PRECISIONS),
}


@dataclasses.dataclass(frozen=True)
class SRWMOptions:
    """How an SRWM is initialised and run; every field is checked at construction.

    W_0's initialisation (:func:`acljax.srwm.init_state`): ``n_beta`` learning rates per head (4: one per
    block of W, 1: one shared), ``init_scale`` (w_y, w_k), ``q_init_scale`` (w_q), ``beta_init`` (mean of w_b).
    The sequence scan (:func:`acljax.srwm.srwm_scan`): ``impl`` (``"auto"``: as
    :func:`acljax.srwm.api.resolve_impl` decides by device and JAX version) and ``chunk_size`` (steps per chunk
    of ``"scan_remat"``, ``"reversible"`` and ``"pallas"``; None: their default).
    Every step: ``input_softmax`` (softmax over each head's input) and ``precision`` of the products
    (``"highest"``: float32; ``"high"``, ``"default"``: faster on GPU/TPU).
    A continued sequence: ``state_gradient`` (:func:`acljax.srwm.continue_from`, ``"exact"`` or ``"official"``).
    """

    n_beta: int = 4
    init_scale: float = 1.0
    q_init_scale: float = 0.01
    beta_init: float = 0.0
    impl: Impl = "auto"
    chunk_size: int | None = None
    input_softmax: bool = False
    state_gradient: StateGradient = "exact"
    precision: Precision = "highest"

    def __post_init__(self):
        check_arguments("SRWMOptions", OPTION_CHECKS,
                        {field.name: getattr(self, field.name) for field in dataclasses.fields(self)})
