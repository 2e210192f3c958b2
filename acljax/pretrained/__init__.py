"""Meta-trained models shipped with acljax (each folder: config.json, best/, metrics.jsonl, results.json;
see README.md here). Wherever acljax takes a model (``acljax eval --model``, ``init_from``), a shipped
model's name works as well as a workdir's path."""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent


def pretrained_names() -> list[str]:
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def model_dir(model: str | Path) -> Path:
    """The folder of ``model``: a workdir written by ``acljax train``, or a shipped model by name (also as
    ``pretrained/NAME``, the path inside a source checkout before models moved into the package)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if str(path.parent) in (".", "pretrained") and (PRETRAINED_DIR / path.name / "config.json").is_file():
        return PRETRAINED_DIR / path.name
    raise FileNotFoundError(f"{model}: neither a workdir nor a shipped model ({', '.join(pretrained_names())})")
