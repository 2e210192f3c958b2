"""Plots of ACL runs: per-term meta-training curves, term accuracies side by side, fast-weight evolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: importing this module leaves matplotlib's backend alone

from acljax.acl.objective import task_letter, term_label
from acljax.data.episodes import segments


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines() if line]


def term_curves(runs: dict[str, str | Path], out: str | Path, title: str = "") -> Path:
    """Training loss and accuracy of every term against step, one line per run (the paper's Fig. 2:
    without the ACL term, the backward term's loss rises as in-context learning emerges)."""
    data = {label: [r for r in _read(path) if "loss" in r] for label, path in runs.items()}
    terms = list(dict.fromkeys(k.split("/", 1)[1] for rows in data.values() for k in rows[0]  # objective order
                               if k.startswith("loss/")))
    fig = Figure(figsize=(3.6 * len(terms) + 1.6, 5.6))
    axes = fig.subplots(2, len(terms), squeeze=False, sharex=True, sharey="row")  # one scale per row: comparable
    for label, rows in data.items():
        steps = [r["step"] for r in rows]
        style = {"label": label, "marker": "o" if len(steps) < 20 else None, "markersize": 4}  # few points show
        for col, term in enumerate(terms):
            axes[0, col].plot(steps, [r.get(f"loss/{term}", np.nan) for r in rows], **style)
            axes[1, col].plot(steps, [100 * r.get(f"acc/{term}", np.nan) for r in rows], **style)
    for col, term in enumerate(terms):
        axes[0, col].set_title(f"{term_label(term)}" + (" (ACL term)" if term.startswith("backward") else ""))
        axes[1, col].set_xlabel("meta-training step")
    axes[0, 0].set_ylim(bottom=0)
    axes[1, 0].set_ylim(0, 100)
    axes[0, 0].set_ylabel("query cross-entropy")
    axes[1, 0].set_ylabel("query accuracy (%)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(title or "meta-training terms")
    fig.tight_layout()
    return _save(fig, out)


def term_bars(results: dict[str, dict[str, float]], terms: dict[str, str], out: str | Path, chance: float,
              title: str = "", errors: dict[str, dict[str, float]] | None = None, error_caption: str = "") -> Path:
    """Grouped bars: for each model (``results[label]`` = term metrics), the accuracy of ``terms``
    (metric name -> caption), with the chance level; ``errors[label][name]`` (a fraction, like the metrics), where
    present, as ±1 error bars, said by ``error_caption`` under the axis."""
    fig = Figure(figsize=(3.5 + 1.6 * len(terms), 4))
    ax = fig.subplots()
    width = 0.8 / len(results)
    drawn = False
    for i, (label, metrics) in enumerate(results.items()):
        values = [100 * metrics[name] for name in terms]
        spread = [100 * (errors or {}).get(label, {}).get(name, np.nan) for name in terms]
        has_errors = not np.isnan(spread).all()
        drawn |= has_errors
        bars = ax.bar(np.arange(len(terms)) + i * width, values, width, label=label,
                      yerr=spread if has_errors else None, capsize=3, error_kw={"elinewidth": 1})
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.axhline(100 * chance, color="grey", linestyle="--", label="chance")
    ax.set_xticks(np.arange(len(terms)) + width * (len(results) - 1) / 2, list(terms.values()))
    ax.set_ylabel("query accuracy (%)")
    if drawn and error_caption:
        ax.set_xlabel(error_caption, fontsize=8)
    ax.set_ylim(0, 110)  # room for the labels of bars near 100
    ax.set_yticks(range(0, 101, 20))
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside the bars, never over one
    fig.tight_layout()
    return _save(fig, out)


def fast_weight_evolution(model, objective, images, feedback, out: str | Path, *, block: int = 0, head: int = 0,
                          title: str = "") -> Path:
    """Heatmaps of one head's output fast weights W_y for one sequence: W_0, then the change made by each
    task's demos (state after task i minus state after task i - 1). images (1, L, H, W, C), feedback (1, L)."""
    tokens = model.embed(images, feedback)
    states, snapshots = None, [np.asarray(model.net.blocks[block].srwm_layer.srwm.initial_state.w_y[head])]
    for seg in segments(list(objective.tasks)):
        if seg.shots is not None:
            _, states = model.sequence(tokens[:, seg.shots], states)
        _, states = model.sequence(tokens[:, seg.demos], states)
        snapshots.append(np.asarray(states[block].w_y[0, head]))
    panels = [("W_0", snapshots[0])] + [(f"change by task {task_letter(i)}'s demos", b - a) for i, (a, b) in
                                         enumerate(zip(snapshots, snapshots[1:]))]
    fig = Figure(figsize=(3.2 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (caption, w) in zip(axes[0], panels):
        limit = float(np.abs(w).max()) or 1.0
        image = ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(caption)
        ax.set_xlabel(f"output unit (of {w.shape[1]})")
        ax.set_ylabel(f"input unit (of {w.shape[0]})")
        ax.set_xticks([0, w.shape[1] - 1])
        ax.set_yticks([0, w.shape[0] - 1])
        fig.colorbar(image, ax=ax, fraction=0.046, label="weight" if caption == "W_0" else "change")
    fig.suptitle(title or f"block {block}, head {head}: fast weights W_y over a sequence")
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
