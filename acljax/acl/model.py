"""The in-context learner a config builds, and the config and parameters a workdir or shipped model holds."""

from __future__ import annotations

import json
from pathlib import Path

from flax import nnx

from acljax.acl.config import ACLConfig, config_from_dict
from acljax.nn.learner import InContextLearner
from acljax.pretrained import model_dir
from acljax.workdir import Workdir


def build_model(config: ACLConfig, image_shape, *, seed: int | None = None) -> InContextLearner:
    m = config.model
    return InContextLearner(image_shape, config.num_classes, encoder=m.encoder,
                            conv_channels=m.conv_channels, mlp_features=m.mlp_features, num_features=m.num_features,
                            num_heads=m.num_heads, num_blocks=m.num_blocks, hidden_features=m.hidden_features,
                            dropout_rate=m.dropout_rate, feedback_scale=m.feedback_scale, options=m.srwm,
                            rngs=nnx.Rngs(config.seed if seed is None else seed))


def image_shape(config: ACLConfig, pools) -> tuple[int, ...]:
    return tuple(pools[config.tasks[0].pool].images.shape[1:])


def load_params(path: str | Path, like):
    """Parameters saved in ``best/`` of a workdir or of a shipped model (by name)."""
    workdir = Workdir(model_dir(path), create=False)
    step, params = workdir.restore_best(like)
    if step is None:
        raise FileNotFoundError(f"{path}: no best/ checkpoint (train one with: acljax train --workdir {path})")
    return params


def load_config(path: str | Path) -> ACLConfig:
    """The config of a workdir or of a shipped model (by name)."""
    file = model_dir(path) / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no config.json (not a workdir written by acljax train)")
    try:
        saved = json.loads(file.read_text())
    except (OSError, ValueError) as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{file}: not a readable JSON config ({e}); a workdir's config.json is written by "
                         "acljax train") from e
    return config_from_dict(saved, file)
