"""Configuration of an ACL meta-training run: data pools, tasks, model, objective and optimiser.

A config module (``acljax/configs/``, or any file) defines ``get_config() -> ACLConfig``. The config is saved as
``config.json`` in the workdir, and :func:`config_from_dict` rebuilds it (for evaluation and resume).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from pathlib import Path
from typing import Any

from acljax.checks import SEED_LIMIT, is_positive_int, require_finite, require_positive_finite
from acljax.data.episodes import TaskSpec, num_outputs
from acljax.nn.learner import ENCODERS, check_mlp_features
from acljax.nn.srwm import check_module_arguments
from acljax.srwm.options import SRWMOptions

SCHEDULES = ("warmup", "constant")
MAX_IMAGE_SIZE = 1024  # PoolConfig.size: a 1024x1024x3 float32 image is 12 MiB, a sequence of them gigabytes


def check_types(cls: type, values: dict[str, Any]) -> None:
    """Each of ``values`` (fields of the dataclass ``cls``) has its field's annotated type (an int where a float
    goes); the ValueError names ``Class.field``, the type and what arrived."""
    hints = _hints(cls)
    for name, value in values.items():
        if not _is_a(value, hints[name]):
            raise ValueError(f"{cls.__name__}.{name} must be {_type_name(hints[name])}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(node: Any) -> dict[str, Any]:
    return {field.name: getattr(node, field.name) for field in dataclasses.fields(node)}


def _is_a(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(value, arg) for arg in args)
    if origin is typing.Literal:
        return isinstance(value, str) and value in args
    if origin is tuple:  # tuple[X, ...]
        return isinstance(value, tuple) and all(_is_a(item, args[0]) for item in value)
    if hint in (int, float):
        return isinstance(value, numbers.Integral if hint is int else numbers.Real) and not isinstance(value, bool)
    return value is None if hint is type(None) else isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return f"one of {args}"
    if origin is tuple:
        return f"a tuple (JSON: a list), each item {_type_name(args[0])}"
    names = {type(None): "None", int: "an int", float: "a number", str: "a string", bool: "true or false"}
    return names.get(hint, f"a {hint.__name__}")


def _require_positive_ints(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not is_positive_int(value):
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


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
        check_types(type(self), _fields(self))
        if self.size is not None and not 4 <= self.size <= MAX_IMAGE_SIZE:
            raise ValueError(f"PoolConfig.size must be None (as stored) or an int from 4 to {MAX_IMAGE_SIZE} (images "
                             f"are resized to size x size; 28 or 32 in the paper), got {self.size!r}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"PoolConfig.channels must be 1, 3 or None (as stored), got {self.channels!r}")
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
    srwm: SRWMOptions = SRWMOptions()  # the SRWM layers' options, e.g. --set model.srwm.impl=scan

    def __post_init__(self):
        check_types(type(self), _fields(self))
        # the modules' own checks (acljax.nn), so a config is refused exactly when its model would be
        check_module_arguments("ModelConfig", conv_channels=self.conv_channels, num_features=self.num_features,
                               num_heads=self.num_heads, num_blocks=self.num_blocks,
                               hidden_features=self.hidden_features, dropout_rate=self.dropout_rate,
                               **({} if self.num_classes is None else {"num_classes": self.num_classes}))
        check_mlp_features("ModelConfig.mlp_features", self.mlp_features)
        if self.encoder not in ENCODERS:
            raise ValueError(f"ModelConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
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
        check_types(type(self), _fields(self))
        if not self.tasks:
            raise ValueError("ACLConfig.tasks must hold at least one TaskSpec")
        for task in self.tasks:
            check_types(TaskSpec, _fields(task))
        if not 0 <= self.seed < SEED_LIMIT:
            raise ValueError(f"ACLConfig.seed must be an int from 0 to 2**63 - 1, got {self.seed!r}")
        if self.num_devices is not None:
            _require_positive_ints("ACLConfig", num_devices=self.num_devices)
        if self.task_scales is not None and len(self.task_scales) != len(self.tasks):
            raise ValueError(f"ACLConfig.task_scales must have one entry per task ({len(self.tasks)}), "
                             f"got {self.task_scales!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"ACLConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("skip_nonfinite_steps", "prefetch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"ACLConfig.{name} must be an int >= 0, got {getattr(self, name)!r}")
        _require_positive_ints("ACLConfig", **{name: getattr(self, name) for name in (
            "batch_size", "steps", "warmup_steps", "log_every", "validate_every", "validation_batches",
            "test_batches")})
        if self.checkpoint_every is not None:
            _require_positive_ints("ACLConfig", checkpoint_every=self.checkpoint_every)
        if self.cycle_orders and len({task.first_shot for task in self.tasks}) > 1:
            raise ValueError("ACLConfig.cycle_orders=True needs every task with the same first_shot (each rotation "
                             "must have the same terms, which the log names by position), got first_shot "
                             f"{[task.first_shot for task in self.tasks]}")
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


def config_from_dict(d: Any, source: str | Path = "config") -> ACLConfig:
    """Inverse of ``dataclasses.asdict`` for :class:`ACLConfig` (e.g. a workdir's config.json), validated as a
    config written in Python: a ValueError names ``source`` and the field. Fields missing from ``d`` (added by a
    later acljax) take their defaults, except ``pools``, ``tasks`` and ``model``; an older form is first
    brought up to date (:func:`migrate_config_dict`)."""
    try:
        return _from_dict(ACLConfig, migrate_config_dict(d), "")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from e


FLAT_SRWM_FIELDS = ("state_gradient", "impl", "precision")  # ModelConfig's SRWM fields before ModelConfig.srwm


def migrate_config_dict(d: Any) -> Any:
    """A stored config (``dataclasses.asdict`` form) in today's shape. Configs written before ``ModelConfig.srwm``
    held three SRWM options (``state_gradient``, ``impl``, ``precision``) flat in ``model``: they
    move into ``model.srwm``. Anything else is returned as it came."""
    model = d.get("model") if isinstance(d, dict) else None
    if not isinstance(model, dict) or not (flat := {key: model[key] for key in FLAT_SRWM_FIELDS if key in model}):
        return d
    if "srwm" in model:
        raise ValueError(f"model has both 'srwm' and the older flat {', '.join(map(repr, flat))}; keep 'srwm' only")
    return {**d, "model": {**{key: v for key, v in model.items() if key not in flat}, "srwm": flat}}


def _from_dict(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{where or 'the config'} must be a JSON object of {cls.__name__}'s fields, got {d!r:.80}")
    names = [f.name for f in dataclasses.fields(cls)]
    if unknown := [key for key in d if key not in names]:
        raise ValueError(f"{where or 'the config'} has no field {unknown[0]!r} ({cls.__name__}'s fields: "
                         f"{', '.join(names)})")
    if cls is ACLConfig and (missing := [key for key in ("pools", "tasks", "model") if key not in d]):
        raise ValueError(f"the config has no {missing[0]!r} (an ACLConfig saved by acljax train always has it)")
    nested = {"pools": PoolConfig, "tasks": TaskSpec}
    fields = dict(d)
    for name, value in d.items():
        if name in nested:
            if not isinstance(value, list | tuple):
                raise ValueError(f"{name} must be a list of {nested[name].__name__} objects, got {value!r:.80}")
            fields[name] = tuple(_from_dict(nested[name], item, f"{name}.{i}") for i, item in enumerate(value))
        elif dataclasses.is_dataclass(hint := _hints(cls)[name]):  # model, model.srwm
            fields[name] = _from_dict(hint, value, f"{where}.{name}" if where else name)
        elif isinstance(value, list):  # JSON has no tuples
            fields[name] = tuple(value)
    try:
        check_types(cls, fields)
        return cls(**fields)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where + ': ' if where else ''}{e}") from e
