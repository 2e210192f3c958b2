"""A run's working directory: JSON-lines metrics and resumable orbax checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def _manager(path: Path, max_to_keep: int) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True))


class Workdir:
    """``workdir/metrics.jsonl`` (one JSON object per line), ``workdir/checkpoints/<step>`` and, for runs
    that keep their best parameters, ``workdir/best/<step>`` with ``workdir/best.json``.

    On resume, metric lines logged after the restored checkpoint are dropped, so a resumed run's
    log reads exactly like an uninterrupted one. ``create=False`` opens an existing folder read-only.
    In a multi-process run only process 0 writes metrics and JSON; every process takes part in checkpoints.
    """

    def __init__(self, path: str | os.PathLike, *, max_to_keep: int = 2, create: bool = True):
        self.path = Path(path).absolute()
        if not create and not self.path.is_dir():
            raise FileNotFoundError(f"{path}: no such workdir")
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.path / "metrics.jsonl"
        self.max_to_keep = max_to_keep
        self._checkpoints = self._best = None
        self._best_metrics: dict | None = None

    @property
    def checkpoints(self) -> ocp.CheckpointManager:
        if self._checkpoints is None:
            self._checkpoints = _manager(self.path / "checkpoints", self.max_to_keep)
        return self._checkpoints

    @property
    def best(self) -> ocp.CheckpointManager:
        if self._best is None:
            self._best = _manager(self.path / "best", 1)
        return self._best

    @property
    def writes(self) -> bool:
        return jax.process_index() == 0

    def log(self, step: int, **metrics: Any) -> None:
        if not self.writes:
            return
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
            if self.writes:
                self.metrics_path.unlink(missing_ok=True)
            return 0, like
        tree = self.checkpoints.restore(step, args=ocp.args.StandardRestore(like))
        kept = [m for m in self.read_metrics() if m["step"] <= step]
        if self.writes:
            self.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        return step, tree

    def save_best(self, step: int, tree: Any, metrics: dict) -> None:
        """Replace the kept best checkpoint with ``tree`` and record ``metrics`` in best.json."""
        self.best.save(step, args=ocp.args.StandardSave(tree), force=True)
        self.best.wait_until_finished()
        self._best_metrics = {"step": step, **metrics}
        self.write_json("best.json", self._best_metrics)

    def best_metrics(self) -> dict:
        """What :meth:`save_best` recorded (in this process, or earlier in best.json)."""
        if self._best_metrics is None:
            path = self.path / "best.json"
            self._best_metrics = json.loads(path.read_text()) if path.exists() else {}
        return self._best_metrics

    def restore_best(self, like: Any) -> tuple[int | None, Any]:
        """(step, tree) of the best checkpoint, or (None, ``like``) when there is none."""
        if not (self.path / "best").is_dir() or (step := self.best.latest_step()) is None:
            return None, like
        return step, self.best.restore(step, args=ocp.args.StandardRestore(like))

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write ``workdir/name`` (process 0 only)."""
        target = self.path / name
        if not self.writes:
            return target
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
        tmp.replace(target)
        return target
