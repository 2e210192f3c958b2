"""Bad data given to `acljax data prepare`, `eval --stream` and `cl --stream`: one line, exit 2, before any work
(test splits that lack classes or add some, --from where none is taken, FIFOs and folders, crafted .npz headers,
impossible --classes-per-task), and prepares of one name that wait for each other."""

import io
import os
import threading
import zipfile

import numpy as np
import pytest

from acljax.cli import main
from acljax.data import ImageSet, registry
from acljax.data.sources import import_npz


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    return tmp_path / "cache"


def toy_npz(path, train_classes=range(10), test_classes=range(10), per_class=6):
    """Random 8x8 images, ``per_class`` of each class, for the training and the test split."""
    rng = np.random.default_rng(0)
    y, y_test = np.repeat(list(train_classes), per_class), np.repeat(list(test_classes), per_class)
    np.savez(path, x=rng.integers(0, 256, (len(y), 8, 8), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (len(y_test), 8, 8), dtype=np.uint8), y_test=y_test)
    return str(path)


def commands(stream, out):
    """The three commands that read a .npz: prepare it, evaluate a shipped model on it, run a baseline on it."""
    return {"prepare": ["data", "prepare", "mine", "--from", stream],
            "eval": ["eval", "--stream", stream, "--runs", "1", "--shots", "1", "--out", str(out)],
            "cl": ["cl", "--stream", stream, "--seeds", "1", "--set", "epochs=1", "--set", "batch_size=4",
                   "--out", str(out)]}


def refused(argv, capsys) -> str:
    """The one error line of ``argv`` (exit 2, no traceback; progress lines may come first)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("acljax: error: ") and err.count("acljax: error: ") == 1, err
    assert "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize("command", ["eval", "cl"])
def test_a_test_split_lacking_classes_is_refused_when_the_stream_is_built(tmp_path, command, capsys):
    stream = toy_npz(tmp_path / "lacks.npz", test_classes=range(8))  # classes 8 and 9 have no test images
    err = refused(commands(stream, tmp_path / "out")[command], capsys)
    assert "lacks.npz: the test split has no images of class(es) [8, 9]" in err


@pytest.mark.parametrize("command", ["eval", "cl"])
def test_test_classes_the_training_split_lacks_are_refused(tmp_path, command, capsys):
    stream = toy_npz(tmp_path / "extra.npz", train_classes=range(8))  # test classes 8 and 9 are never trained
    err = refused(commands(stream, tmp_path / "out")[command], capsys)
    assert "extra.npz: the test split has class(es) [8, 9] that the training split lacks" in err


def test_split_stream_names_its_source_in_the_error():
    from acljax.data.streams import split_stream

    data = ImageSet(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 2, 3], np.int32))
    with pytest.raises(ValueError, match=r"^my\.npz: the test split has no images of class\(es\) \[3\]"):
        split_stream(data, ImageSet(data.x[:3], data.y[:3]), num_tasks=2, source="my.npz")


@pytest.mark.parametrize("command", ["eval", "cl"])
def test_more_classes_per_task_than_the_data_set_has(tmp_path, command, capsys):
    argv = commands(toy_npz(tmp_path / "ten.npz"), tmp_path / "out")[command] + ["--classes-per-task", "11"]
    err = refused(argv, capsys)
    assert "classes_per_task=11 is more than the 10 classes" in err and "give at most 10" in err
    assert "needs 0" not in err


@pytest.mark.parametrize("name", [*registry.KNOWN, "my_set"])
def test_every_data_set_honours_or_refuses_from(tmp_path, name, monkeypatch, capsys):
    from acljax.data import glyphs

    monkeypatch.setattr(glyphs, "build_glyph_set", lambda **_: pytest.fail("rendered the glyphs despite --from"))
    source = toy_npz(tmp_path / "good.npz")
    if name == "glyphs":
        err = refused(["data", "prepare", name, "--from", source], capsys)
        assert "glyphs has no --from source" in err and "acljax data prepare glyphs (no --from)" in err
        assert registry.read_info(name) is None
    else:
        assert main(["data", "prepare", name, "--from", source]) == 0
        assert registry.read_info(name)["source"] == f"npz file {source}"


def unblock_after(seconds, run, fifo):
    """Run ``run`` in a thread; if it is still blocked on ``fifo`` after ``seconds``, open the FIFO's writing end
    (which lets a reader see end of file) so that the test fails instead of hanging."""
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    blocked = worker.is_alive()
    if blocked:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
    assert not blocked, f"blocked on the FIFO {fifo}"


@pytest.mark.parametrize("command", ["prepare", "eval", "cl"])
def test_a_fifo_is_refused_at_once(tmp_path, command, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    codes = []
    unblock_after(60, lambda: codes.append(main(commands(str(fifo), tmp_path / "out")[command])), fifo)
    assert codes == [2] and "pipe.npz: a FIFO (named pipe), not a regular file" in capsys.readouterr().err


def test_a_fifo_in_an_idx_folder_is_refused_at_once(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        os.mkfifo(folder / stem)
    codes = []
    unblock_after(60, lambda: codes.append(main(["data", "prepare", "fm", "--from", str(folder)])),
                  folder / "train-images-idx3-ubyte")
    assert codes == [2] and "train-images-idx3-ubyte: a FIFO (named pipe), not a regular file" in \
        capsys.readouterr().err


@pytest.mark.parametrize("command", ["prepare", "eval", "cl"])
def test_a_folder_where_a_npz_file_is_expected(tmp_path, command, capsys):
    (tmp_path / "folder.npz").mkdir()
    err = refused(commands(str(tmp_path / "folder.npz"), tmp_path / "out")[command], capsys)
    assert "folder.npz: a folder, not a regular file; expected a .npz file" in err


def crafted_npz(path, shape, descr="<f8", data=b"\0" * 64, crafted="x"):
    """A .npz whose ``crafted`` array's header declares ``shape`` of ``descr`` but holds only ``data``; the
    other of 'x' and 'y' is genuine."""
    genuine = {"x": np.zeros((10, 4, 4), np.uint8), "y": np.arange(10)}
    with zipfile.ZipFile(path, "w") as archive:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": descr, "fortran_order": False, "shape": shape})
        archive.writestr(f"{crafted}.npy", member.getvalue() + data)
        for name in {"x", "y"} - {crafted}:
            member = io.BytesIO()
            np.save(member, genuine[name])
            archive.writestr(f"{name}.npy", member.getvalue())
    return str(path)


@pytest.mark.parametrize("command", ["prepare", "eval", "cl"])
def test_a_huge_declared_array_is_refused_from_its_header(tmp_path, command, capsys, monkeypatch):
    import acljax.cl.evaluate
    import acljax.data.sources

    for module in (acljax.data.sources, acljax.cl.evaluate):  # a machine of 4 GiB: the header is judged first
        monkeypatch.setattr(module, "available_memory", lambda: 4 << 30)
    stream = crafted_npz(tmp_path / "huge.npz", (10**6, 1000, 1000))  # 8e12 bytes = 7.28 TiB of float64
    err = refused(commands(stream, tmp_path / "out")[command], capsys)
    assert "array 'x' declares shape (1000000, 1000, 1000) of float64 (7.3 TiB) but holds 64 B of data" in err


def test_arrays_that_do_not_fit_in_memory_are_refused_with_the_estimate(tmp_path, monkeypatch):
    from acljax.data import sources

    path = tmp_path / "fits.npz"
    np.savez_compressed(path, x=np.zeros((20, 8, 8), np.uint8) + np.arange(20, dtype=np.uint8)[:, None, None],
                        y=np.arange(20, dtype=np.int64) % 4)
    assert len(import_npz(path)["train"].y) == 20  # compressed members: their declared sizes are their real ones
    monkeypatch.setattr(sources, "available_memory", lambda: 1000)
    # x: 20*8*8 = 1280 bytes, y: 20*8 = 160 bytes; 1440 bytes = 1.4 KiB
    with pytest.raises(ValueError, match=r"fits\.npz: its arrays x, y need 1\.4 KiB in memory, more than the "
                                         r"1000 B available now"):
        import_npz(path)


def test_a_second_prepare_waits_for_the_first_and_does_not_prepare_again(monkeypatch, capsys):
    data = ImageSet(np.arange(64, dtype=np.uint8).reshape(4, 4, 4, 1), np.arange(4, dtype=np.int32))
    started, release, imports = threading.Event(), threading.Event(), []
    waiting = registry.__dict__.get("_waiting")

    def waiting_spy(name, lock):  # the second prepare says it waits: the first may finish now
        result = waiting(name, lock)
        release.set()
        return result

    def slow_import(name, source, progress):  # stands in for the 8-minute render
        imports.append(name)
        release.set() if len(imports) > 1 else (started.set(), release.wait(30))
        return {"background": data, "evaluation": data}, {"source": "the stand-in render"}

    monkeypatch.setattr(registry, "_waiting", waiting_spy, raising=False)
    monkeypatch.setattr(registry, "_import", slow_import)
    first = threading.Thread(target=registry.prepare, args=("glyphs",))
    first.start()
    assert started.wait(30)  # the first prepare is rendering
    second = registry.prepare("glyphs")
    first.join(30)
    assert imports == ["glyphs"] and second.source == "the stand-in render"
    out = capsys.readouterr().out
    assert "glyphs: another prepare of glyphs is running" in out and "waiting for it to finish" in out
    assert "not preparing it again" in out


def test_a_huge_declared_label_array_is_refused_by_acljax_cl_before_its_memory_check(tmp_path, capsys):
    """acljax cl reads a class-incremental .npz's labels to size its memory estimate: from the checked headers."""
    stream = crafted_npz(tmp_path / "bigy.npz", (10**12,), descr="<i8", crafted="y")
    err = refused(commands(stream, tmp_path / "out")["cl"] + ["--scenario", "class"], capsys)
    assert "bigy.npz" in err and "TiB" in err
