"""What a meta-training run needs, checked before its images are loaded and its program compiled."""

from __future__ import annotations

import math
import os
from functools import reduce
from pathlib import Path

import jax
from flax import nnx

from acljax.acl.config import ACLConfig
from acljax.acl.model import build_model, load_config
from acljax.acl.pools import check_pools
from acljax.data.store import available_memory, byte_size
from acljax.distributed import local_rows, make_mesh
from acljax.pretrained import model_dir


def check_start(config: ACLConfig, workdir: str | Path, *, progress: bool = False,
                profile_dir: str | Path | None = None):
    """What a run needs, checked before its images are loaded and its program compiled: the workdir (and
    ``profile_dir``) can be written, the devices take the batch, every phase's pools hold the tasks
    (:func:`check_pools`), the run fits in memory, the model can be built, ``init_from`` names parameters that
    fit it. Returns (image shape, mesh)."""
    check_folder(workdir)
    if profile_dir is not None:
        check_folder(profile_dir, "profile_dir")
    mesh = make_mesh(config.num_devices)
    rows = local_rows(config.batch_size, mesh)
    shape, images = check_pools(config, progress=progress)
    check_memory(config, shape, images, rows.stop - rows.start)
    model = nnx.eval_shape(lambda: build_model(config, shape))
    if config.init_from is not None:
        check_init_from(config, shape, model)
    return shape, mesh


def check_folder(folder: str | Path, what: str = "workdir") -> None:
    """``folder`` is a folder, or can be made one, that this process can write (checked without creating it);
    errors name ``what`` (the argument)."""
    path = Path(folder).absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {folder}: a file, not a folder; give a new folder" + (
            ", or the workdir of a run to resume it" if what == "workdir" else ""))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{what} {folder}: cannot create it (Not a directory); {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {folder}: cannot write in {existing} (Permission denied); give a folder you "
                         "can write")


def check_memory(config: ACLConfig, shape: tuple[int, ...], images: int, rows: int) -> None:
    """The meta-batches in flight (``rows`` sequences each, as float32: this process's share) and the pools'
    ``images`` (uint8) fit in the memory available."""
    length = sum(t.length for t in config.tasks)
    per_sequence = length * math.prod(shape) * 4
    batches = (config.prefetch + 1) * rows * per_sequence
    pools = images * math.prod(shape)
    if batches + pools > (memory := available_memory()):
        fits = (memory - pools) // ((config.prefetch + 1) * per_sequence) * (config.batch_size // rows)
        raise ValueError(f"batch_size={config.batch_size}: the run needs at least {byte_size(batches + pools)} of "
                         f"memory ({config.prefetch + 1} meta-batches of {rows} sequences of {length} "
                         f"images {shape} as float32: {byte_size(batches)}; the pools' {images} images: "
                         f"{byte_size(pools)}), {byte_size(memory)} is available; "
                         + (f"give batch_size <= {fits}" if fits >= 1 else "lower the pools' size"))


PARAMETER_FIELDS = ("encoder", "conv_channels", "mlp_features", "num_features", "num_heads", "num_blocks",
                    "hidden_features", "srwm.n_beta")  # the ModelConfig fields that decide the parameters' shapes


def check_init_from(config: ACLConfig, shape: tuple[int, ...], model: nnx.Module) -> None:
    """``config.init_from`` is a workdir or shipped model with a best/ checkpoint and a config.json whose model
    has the parameter shapes of ``model`` (an abstract one: :func:`flax.nnx.eval_shape`)."""
    name = config.init_from
    try:
        folder = model_dir(name)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"init_from={name!r}: {e}; train the run it names first (a declared experiment runs "
                                "a whole chain: acljax experiment run NAME), or --set init_from=<a workdir or shipped "
                                "model>") from e
    if not any(step.name.isdigit() for step in (folder / "best").glob("*")):
        raise FileNotFoundError(f"init_from={name!r}: {folder} has no best/ checkpoint (a run writes it at its first "
                                "validation); give a workdir that has one, or a shipped model")
    source = load_config(folder)
    pool = source.pools[source.tasks[0].pool]
    theirs = nnx.eval_shape(lambda: build_model(source, (pool.size or shape[0], pool.size or shape[1],
                                                         pool.channels or shape[2])))
    if _parameter_shapes(theirs) == _parameter_shapes(model):
        return
    mine, saved = ({path: reduce(getattr, path.split("."), model) for path in PARAMETER_FIELDS}
                   for model in (config.model, source.model))
    differences = [f"model.{k}: {saved[k]!r} there, {mine[k]!r} here" for k in PARAMETER_FIELDS if mine[k] != saved[k]]
    if source.num_classes != config.num_classes:
        differences.append(f"num_classes: {source.num_classes} there, {config.num_classes} here")
    if (pool.size or shape[0], pool.channels or shape[2]) != (shape[0], shape[2]):
        differences.append(f"image size and channels: {pool.size}, {pool.channels} there, {shape} here")
    raise ValueError(f"init_from={name!r}: its parameters do not fit this model ({'; '.join(differences)}); give "
                     f"these settings its values (see {folder / 'config.json'}), or another init_from")


def _parameter_shapes(model: nnx.Module) -> dict:
    return {jax.tree_util.keystr(path): leaf.shape
            for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]}
