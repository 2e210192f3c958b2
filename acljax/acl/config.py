"""Configuration of an ACL meta-training run: data pools, tasks, model, objective and optimiser.

A config module (``acljax/configs/``, or any file) defines ``get_config() -> ACLConfig``. The config is saved as
``config.json`` in the workdir, and :func:`config_from_dict` rebuilds it (for evaluation and resume).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from acljax.checks import require_finite, require_positive_finite
from acljax.data.episodes import TaskSpec, num_outputs
from acljax.nn.learner import ENCODERS
from acljax.srwm.api import IMPLEMENTATIONS
from acljax.srwm.step import PRECISIONS

SCHEDULES = ("warmup", "constant")


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """One data source of the sequences' tasks (``TaskSpec.pool`` indexes these).

    Meta-training uses ``split`` minus the classes held out for meta-validation: either
    ``validation_fraction`` of its classes (a fixed choice) or, if ``validation_split`` is set, that
    split (of ``validation_dataset`` when given) instead. ``test_split`` (e.g. glyphs "evaluation") is
    only used by meta-testing.
    ``rotations`` adds the 90/180/270 degree rotations as new classes after the class split.
    """

    dataset: str = "glyphs"
    split: str = "background"
    size: int | None = 32
    channels: int | None = 3
    rotations: bool = False
    validation_fraction: float = 0.1
    validation_split: str | None = None
    validation_dataset: str | None = None  # with validation_split: validate on another data set (e.g. MNIST)
    test_split: str | None = "evaluation"

    def __post_init__(self):
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"PoolConfig.validation_fraction must be in [0, 1), got {self.validation_fraction!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """:class:`acljax.nn.InContextLearner` sizes (defaults: the paper's model)."""

    encoder: str = "conv4"
    # output size; None: the tasks' label space. A larger one lets a model be meta-finetuned on tasks with
    # more labels (5-way glyph tasks, then 10-way class-incremental Split-MNIST).
    num_classes: int | None = None
    conv_channels: int = 32
    mlp_features: tuple[int, ...] = (256,)
    num_features: int = 256
    num_heads: int = 16
    num_blocks: int = 2
    hidden_features: int = 512
    dropout_rate: float = 0.1
    feedback_scale: float = 1.0  # the one-hot label feedback's factor; 1: the paper's (see InContextLearner)
    state_gradient: str = "exact"
    impl: str = "auto"  # acljax.srwm.IMPLEMENTATIONS or "auto" (Pallas kernels on GPU/TPU, "reversible" on CPU)
    precision: str = "highest"  # of the SRWM products: "highest" (float32), "high", "default" (faster on GPU/TPU)

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"ModelConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.impl != "auto" and self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"ModelConfig.impl must be 'auto' or one of {sorted(IMPLEMENTATIONS)}, got {self.impl!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"ModelConfig.precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")
        require_positive_finite("ModelConfig", feedback_scale=self.feedback_scale)


@dataclasses.dataclass(frozen=True)
class ACLConfig:
    """A meta-training run. Defaults: the paper's optimiser (Adam 0.9/0.995/1e-9, warm-up schedule)."""

    pools: tuple[PoolConfig, ...] = (PoolConfig(),)
    tasks: tuple[TaskSpec, ...] = (TaskSpec(), TaskSpec())
    task_scales: tuple[float, ...] | None = None  # per entry of ``tasks``; None: all 1
    loss_scale: float | None = None  # None: mean over the trained terms
    use_acl: bool = True
    cycle_orders: bool = False  # rotate the task order by one every step (2 tasks: A,B then B,A)
    model: ModelConfig = ModelConfig()
    batch_size: int = 32
    steps: int = 10_000
    schedule: str = "warmup"  # "warmup": d_model^-0.5 min(s^-0.5, s warmup^-1.5); "constant": learning_rate
    learning_rate: float = 1e-3
    warmup_steps: int = 5000
    adam_b1: float = 0.9
    adam_b2: float = 0.995
    adam_eps: float = 1e-9
    log_every: int = 50
    validate_every: int = 500  # meta-validation (and a best/ candidate); a checkpoint is saved there too
    checkpoint_every: int | None = None  # steps between checkpoints in between (preemptible jobs); None: none
    validation_batches: int = 8
    test_batches: int = 16
    init_from: str | None = None  # a workdir or a shipped model's name to start from (meta-finetuning)
    num_devices: int | None = None  # data-parallel devices (the ``data`` mesh axis); None: all of them
    async_checkpoints: bool = False  # write checkpoints in the background (the loop waits only for the host copy)
    prefetch: int = 2  # meta-batches sampled ahead in a background thread (0: in the loop); results are the same
    skip_nonfinite_steps: int = 0  # consecutive NaN/inf-loss steps to discard (update not applied) before stopping
    seed: int = 0

    def __post_init__(self):
        if not self.tasks:
            raise ValueError("ACLConfig.tasks must hold at least one TaskSpec")
        if self.task_scales is not None and len(self.task_scales) != len(self.tasks):
            raise ValueError(f"ACLConfig.task_scales must have one entry per task ({len(self.tasks)}), "
                             f"got {self.task_scales!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"ACLConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("skip_nonfinite_steps", "prefetch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"ACLConfig.{name} must be an int >= 0, got {getattr(self, name)!r}")
        for name in ("batch_size", "steps", "warmup_steps", "log_every", "validate_every", "validation_batches",
                     "test_batches", "checkpoint_every"):
            value = getattr(self, name)
            if name == "checkpoint_every" and value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ACLConfig.{name} must be a positive int, got {value!r}")
        if self.checkpoint_every is not None and self.checkpoint_every % self.log_every:
            raise ValueError(f"ACLConfig.checkpoint_every must be a multiple of log_every={self.log_every} (a resume "
                             f"then logs what an uninterrupted run logs), got {self.checkpoint_every}")
        require_positive_finite("ACLConfig", learning_rate=self.learning_rate, adam_eps=self.adam_eps)
        require_finite("ACLConfig", adam_b1=self.adam_b1, adam_b2=self.adam_b2)
        for name in ("adam_b1", "adam_b2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"ACLConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.loss_scale is not None:
            require_positive_finite("ACLConfig", loss_scale=self.loss_scale)
        for scale in self.task_scales or ():
            require_positive_finite("ACLConfig", task_scales=scale)
        if self.model.num_classes is not None and self.model.num_classes < num_outputs(list(self.tasks)):
            raise ValueError(f"ModelConfig.num_classes={self.model.num_classes} is smaller than the tasks' label "
                             f"space ({num_outputs(list(self.tasks))})")
        for t in self.tasks:
            if t.pool >= len(self.pools):
                raise ValueError(f"a TaskSpec has pool={t.pool} but ACLConfig.pools has {len(self.pools)} entries")

    @property
    def num_classes(self) -> int:
        return self.model.num_classes or num_outputs(list(self.tasks))

    @property
    def scales(self) -> tuple[float, ...]:
        return self.task_scales or (1.0,) * len(self.tasks)


def config_from_dict(d: dict[str, Any]) -> ACLConfig:
    """Inverse of ``dataclasses.asdict`` for :class:`ACLConfig` (e.g. a workdir's config.json)."""
    d = dict(d)
    d["pools"] = tuple(PoolConfig(**p) for p in d["pools"])
    d["tasks"] = tuple(TaskSpec(**t) for t in d["tasks"])
    d["model"] = ModelConfig(**{**d["model"], "mlp_features": tuple(d["model"]["mlp_features"])})
    if d.get("task_scales") is not None:
        d["task_scales"] = tuple(d["task_scales"])
    return ACLConfig(**d)
