"""A run's working directory: JSON-lines metrics and resumable orbax checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp


class Workdir:
    """``workdir/metrics.jsonl`` (one JSON object per line) and ``workdir/checkpoints/<step>``.

    On resume, metric lines logged after the restored checkpoint are dropped, so a resumed run's
    log reads exactly like an uninterrupted one.
    """

    def __init__(self, path: str | os.PathLike, *, max_to_keep: int = 2):
        self.path = Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoints = ocp.CheckpointManager(
            self.path / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False))

    def log(self, step: int, **metrics: Any) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def save(self, step: int, tree: Any) -> None:
        self.checkpoints.save(step, args=ocp.args.StandardSave(tree), force=True)
        self.checkpoints.wait_until_finished()

    def restore_latest(self, like: Any) -> tuple[int, Any]:
        """(step, tree) of the newest checkpoint, or (0, ``like``) when there is none."""
        step = self.checkpoints.latest_step()
        if step is None:
            self.metrics_path.unlink(missing_ok=True)
            return 0, like
        tree = self.checkpoints.restore(step, args=ocp.args.StandardRestore(like))
        kept = [m for m in self.read_metrics() if m["step"] <= step]
        self.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        return step, tree

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write ``workdir/name``."""
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
        tmp.replace(target)
        return target
