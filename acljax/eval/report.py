"""Save a protocol report: JSON, a Markdown table and an accuracy-matrix heatmap PNG."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: importing this module leaves matplotlib's backend alone

from acljax.eval.protocol import Report


def markdown(report: Report, title: str = "", over: str = "seeds") -> str:
    """The metrics (mean ± std over ``over``: "seeds", or "runs" of one model) and the mean accuracy matrix."""
    s = report.summary
    head = f"### {title}\n\n" if title else ""
    metrics = f"| ACC | BWT | FWT | forgetting | {over} |\n|---|---|---|---|---|\n" + "| " + " | ".join(
        f"{100 * s[k]['mean']:.2f} ± {100 * s[k]['std']:.2f}" for k in ("ACC", "BWT", "FWT", "forgetting")
    ) + f" | {len(report.seeds)} |\n"
    names = report.task_names
    mean = report.matrices.mean(0)
    matrix = "\n| after \\ on | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    matrix += "| untrained | " + " | ".join(f"{100 * v:.1f}" for v in report.baselines.mean(0)) + " |\n"
    for i, row in enumerate(mean):
        matrix += f"| {names[i]} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |\n"
    return head + metrics + matrix


SHORT_NAME = 16  # task names longer than this (e.g. a glyph task's class list) are shown by their number


def heatmap(report: Report, path: str | Path, title: str = "") -> Path:
    """The mean accuracy matrix (%) as a heatmap with its values; tasks named as in ``report.task_names``, or
    numbered 1..T when a name is longer than ``SHORT_NAME`` characters."""
    mean = 100 * report.matrices.mean(0)
    n = len(report.task_names)
    fig = Figure(figsize=(1.2 * n + 2, 1.0 * n + 1.5))
    ax = fig.subplots()
    image = ax.imshow(mean, vmin=0, vmax=100, cmap="viridis")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{mean[i, j]:.0f}", ha="center", va="center", color="white" if mean[i, j] < 60 else "black")
    short = max(map(len, report.task_names)) <= SHORT_NAME
    labels = report.task_names if short else [str(i + 1) for i in range(n)]  # long names (class lists): the JSON
    ax.set_xticks(range(n), labels, rotation=45 if short else 0, ha="right" if short else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("accuracy on task" + ("" if short else " (its number in the stream)"))
    ax.set_ylabel("after learning task")
    ax.set_title(title or "accuracy matrix (%)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def claim(directory: str | Path, name: str, settings: dict, migrate: Callable[[dict], dict] | None = None) -> None:
    """Refuse, before the work, to let the evaluation ``settings`` (of ``acljax eval`` or ``acljax cl``) replace
    NAME.json of another evaluation (one whose recorded settings differ; the same one re-run replaces its own).
    ``migrate``: applied to the recorded settings first (settings recorded in an older form)."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        return
    try:
        recorded = json.loads(path.read_text()).get("settings")
        recorded = migrate(recorded) if migrate and recorded is not None else recorded
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded == settings:
        return
    differences = "; ".join(f"{k} {recorded.get(k)!r} there, {settings.get(k)!r} here"
                            for k in dict.fromkeys([*recorded, *settings]) if recorded.get(k) != settings.get(k)
                            ) if isinstance(recorded, dict) else "it records no settings"
    raise ValueError(f"{path} holds the results of another evaluation ({differences}); give another --out or move "
                     "that file")


def save(report: Report, directory: str | Path, name: str, title: str = "", settings: dict | None = None,
         over: str = "seeds") -> dict[str, Path]:
    """Write NAME.json (with ``settings``, what decided the result: see :func:`claim`), NAME.md (the spread
    over ``over``) and NAME.png into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = report.to_json() | ({"settings": settings} if settings is not None else {})
    (directory / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    (directory / f"{name}.md").write_text(markdown(report, title, over))
    return {"json": directory / f"{name}.json", "markdown": directory / f"{name}.md",
            "heatmap": heatmap(report, directory / f"{name}.png", title)}
