"""The prepared-data cache: ``$ACLJAX_DATA_DIR/<name>/<split>.npz`` (uint8 images, int32 labels) + ``info.json``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

DATA_DIR_ENV = "ACLJAX_DATA_DIR"


class ImageSet(NamedTuple):
    """x: (N, H, W, C) uint8 images; y: (N,) int32 labels in [0, num_classes)."""

    x: np.ndarray
    y: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0


class DataNotPrepared(FileNotFoundError):
    """A data set is not in the cache; the message says how to get it."""


def data_dir() -> Path:
    """``$ACLJAX_DATA_DIR``, else ``$XDG_CACHE_HOME/acljax/data`` (default ``~/.cache/acljax/data``)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "acljax" / "data"


def regular_file(path: Path, expected: str, argument: str = "") -> Path:
    """``path`` when it is a regular file (or a link to one). A folder, FIFO, socket or device is refused at
    once, the error naming ``argument`` (e.g. "--from") and what is ``expected``: reading a FIFO would block."""
    where = f"{argument} {path}".strip()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file; expected {expected}") from None
    except OSError as e:
        raise ValueError(f"{where}: cannot look at it ({e.strerror}); expected {expected}") from e
    if not stat.S_ISREG(mode):
        kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
                 stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
        kind = next((k for test, k in kinds.items() if test(mode)), "not a regular file")
        raise ValueError(f"{where}: {kind}, not a regular file; expected {expected}")
    return path


def available_memory() -> int:
    """Bytes a new allocation can take without swapping: ``MemAvailable`` of /proc/meminfo (Linux), else the
    free physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def byte_size(count: int) -> str:
    """``count`` bytes for people: 512 B, 3.0 KiB, 1.5 GiB, 7.3 TiB."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def check_image_set(x: np.ndarray, y: np.ndarray, where: str) -> ImageSet:
    """Validate and normalise to x (N, H, W, C) uint8, y (N,) int32; errors name ``where``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(f"{where}: images must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: images must have shape (N, H, W) or (N, H, W, 1|3), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{where}: labels must have shape ({len(x)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise ValueError(f"{where}: labels must be non-negative integers, got dtype {y.dtype}")
    if len(y) == 0:
        raise ValueError(f"{where}: no examples (images of shape {x.shape})")
    if int(y.max()) >= max(4 * len(y), 1024):  # checked before the cast to int32 and any (max + 1)-sized array
        raise ValueError(f"{where}: labels must be class indices 0..K-1, got a largest label of {int(y.max())} for "
                         f"{len(y)} examples; relabel them, e.g. y = np.unique(y, return_inverse=True)[1]")
    return ImageSet(x, y.astype(np.int32))


def pixel_statistics(x: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (C,) of uint8 images x (N, H, W, C), in [0, 1]. Constant images (a std of
    0, which normalisation would divide by) are an error naming ``where``."""
    if x.size == 0:
        raise ValueError(f"{where}: no pixels (images of shape {x.shape}); a data set needs non-empty images")
    total, squares = np.zeros(x.shape[-1], np.int64), np.zeros(x.shape[-1], np.int64)
    for start in range(0, len(x), 1024):  # exact integer sums, a block at a time: memory stays ~ the images'
        block = x[start:start + 1024].astype(np.int64)
        total += block.sum(axis=(0, 1, 2))
        squares += (block * block).sum(axis=(0, 1, 2))
    count = x.size // x.shape[-1]
    mean = total / count / 255.0
    std = np.sqrt(np.maximum(squares / count / 255.0**2 - mean**2, 0.0))
    constant = x.min(axis=(0, 1, 2)) == x.max(axis=(0, 1, 2))
    if constant.any():
        raise ValueError(f"{where}: every image is the same constant colour in channel(s) "
                         f"{np.flatnonzero(constant).tolist()} (std 0): there is nothing to learn from")
    return mean, std


@contextlib.contextmanager
def name_lock(name: str, root: Path | None = None, on_wait=None):
    """Hold the cache's lock for data set ``name`` (``.<name>@lock``): prepares of one name run one at a
    time, across processes. ``on_wait(lock_path)`` is called first when another process holds it. Yields
    the cache folder."""
    root = root or data_dir()
    lock = root / f".{name}@lock"
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = lock.open("a")
    except OSError as e:
        raise ValueError(f"{DATA_DIR_ENV}={root}: cannot write the data cache there ({e.strerror}); point "
                         f"{DATA_DIR_ENV} at a writable folder") from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(lock)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_prepared(name: str, splits: dict[str, ImageSet], info: dict, root: Path | None = None) -> Path:
    """:func:`publish` under the data set's lock."""
    with name_lock(name, root) as root:
        return publish(name, splits, info, root)


def publish(name: str, splits: dict[str, ImageSet], info: dict, root: Path) -> Path:
    """Write all splits and info.json into a new hidden folder ``.<name>@XXXX``, then point the symlink
    ``<name>`` at it in one atomic replace: an interrupted prepare never leaves a half-written data set, and a
    re-prepare never leaves the name missing. Folders left by killed prepares are removed first; the new one
    gets the permissions of the process's umask (a shared cache stays readable). The caller holds
    :func:`name_lock`."""
    target = root / name
    live = target.resolve() if target.is_symlink() else None
    for stale in root.glob(f".{name}@*"):
        if stale.is_dir() and stale.resolve() != live:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}@", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    try:
        for split, data in splits.items():
            np.savez(tmp / f"{split}.npz", x=data.x, y=data.y)
        stats_split = "train" if "train" in splits else next(iter(splits))
        mean, std = pixel_statistics(splits[stats_split].x, f"data set {name!r}, split {stats_split!r}")
        info = {"name": name, **info,
                "splits": {s: {"num_examples": len(d.y), "num_classes": d.num_classes,
                               "image_shape": list(d.x.shape[1:])} for s, d in splits.items()},
                "mean": mean.tolist(), "std": std.tolist()}
        (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        link = root / f".{name}@link"
        link.unlink(missing_ok=True)
        link.symlink_to(tmp.name)
        if target.is_dir() and not target.is_symlink():  # a cache written before data sets were symlinks
            shutil.rmtree(target)
        os.replace(link, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if live is not None:
        shutil.rmtree(live, ignore_errors=True)
    return target


def read_info(name: str, root: Path | None = None) -> dict | None:
    path = (root or data_dir()) / name / "info.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(_damaged(path, name, e)) from e


def read_split(name: str, split: str, root: Path | None = None) -> ImageSet:
    path = (root or data_dir()) / name / f"{split}.npz"
    try:
        with np.load(path) as f:
            return ImageSet(f["x"], f["y"])
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(_damaged(path, name, e)) from e


def _damaged(path: Path, name: str, error: Exception) -> str:
    return (f"{path}: the data cache file is damaged ({error}); prepare the data set again: "
            f"acljax data prepare {name} [--from ...]")
