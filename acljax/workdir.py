"""A run's working directory: JSON-lines metrics and resumable orbax checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

BEST_KEPT = 2  # the previous best survives until a new one is saved, so a resume can fall back to it
CHECKSUMS = "sha256sums.json"  # in each checkpoint's folder: {relative path: sha256 of the file}


class WorkdirBusy(ValueError):
    """Another run holds the workdir's lock."""


_ABSENT = object()


def _differences(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two JSON-like trees; keys the old tree does not have (fields
    added by a later acljax, at their defaults) are not compared."""
    if old is _ABSENT:
        return {}
    if isinstance(old, dict) and isinstance(new, dict):
        out = {}
        for key in dict.fromkeys([*old, *new]):
            out.update(_differences(old.get(key, _ABSENT), new.get(key), f"{prefix}{key}."))
        return out
    return {} if old == new else {prefix.rstrip("."): (old, new)}


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write (disk full, read-only folder) becomes one line naming the file; what was written
    before stays intact, so the run resumes once the cause is fixed."""
    try:
        yield
    except OSError as e:
        raise ValueError(f"cannot write {path} ({e.strerror or e}); the run stops here and resumes from its last "
                         "checkpoint once there is room or permission") from e


def _file_digests(folder: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKSUMS:
            with path.open("rb") as f:
                digests[str(path.relative_to(folder))] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


def seal(folder: Path) -> None:
    """Write ``folder/sha256sums.json`` for a finished checkpoint (single-process runs: with several
    processes, each may see only its own files)."""
    if jax.process_count() == 1:
        tmp = folder / (CHECKSUMS + ".tmp")
        tmp.write_text(json.dumps(_file_digests(folder), indent=0) + "\n")
        tmp.replace(folder / CHECKSUMS)


def verify(folder: Path) -> None:
    """Check a checkpoint's files against its ``sha256sums.json``; a ValueError names the first file that is
    missing or altered. Checkpoints without the file (older runs, shipped ones) pass unchecked."""
    sums = folder / CHECKSUMS
    if jax.process_count() > 1 or not sums.exists():
        return
    expected = json.loads(sums.read_text())
    found = _file_digests(folder)
    for name, digest in expected.items():
        if found.get(name) != digest:
            raise ValueError(f"{folder / name}: {'missing' if name not in found else 'sha256 mismatch'} "
                             f"(the file changed after the checkpoint was written)")


def _manager(path: Path, max_to_keep: int, asynchronous: bool = False) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=asynchronous, create=True))


class Workdir:
    """``workdir/metrics.jsonl`` (one JSON object per line), ``workdir/checkpoints/<step>`` and, for runs
    that keep their best parameters, ``workdir/best/<step>`` with ``workdir/best.json``.

    On resume, metric lines logged after the restored checkpoint are dropped, so a resumed run's
    log reads exactly like an uninterrupted one; so are best checkpoints saved after it (a run killed
    between saving ``best/N`` and ``checkpoints/N`` saves ``best/N`` again when it gets there), and a
    last metrics line torn by a crash mid-write. Every checkpoint gets a ``sha256sums.json`` of its files
    once written; a restore checks it first, so a file altered later (bit rot, a bad copy) is found rather
    than loaded, and a damaged newest checkpoint falls back to the previous one. ``create=False`` opens an
    existing folder read-only.
    In a multi-process run only process 0 writes metrics and JSON; every process takes part in checkpoints.
    """

    def __init__(self, path: str | os.PathLike, *, max_to_keep: int = 2, create: bool = True,
                 async_checkpoints: bool = False):
        self.path = Path(path).absolute()
        if not create and not self.path.is_dir():
            raise FileNotFoundError(f"{path}: no such workdir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"workdir {path}: cannot create it ({e.strerror})") from e
        self.metrics_path = self.path / "metrics.jsonl"
        self.max_to_keep = max_to_keep
        self.async_checkpoints = async_checkpoints
        self._unsealed: int | None = None  # an asynchronous checkpoint still being written
        self._checkpoints = self._best = None
        self._best_metrics: dict | None = None
        self._tensorboard = None

    def mirror_to_tensorboard(self) -> None:
        """From now on, :meth:`log` also writes every number as a TensorBoard scalar under ``workdir/tensorboard``
        (process 0; metrics.jsonl stays the record a resume trusts). Events reach the file every 10 s and when
        :meth:`exclusive` ends. Needs the ``tensorboard`` extra."""
        if not self.writes:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ValueError("--tensorboard needs tensorboardX: pip install 'acljax[tensorboard]'") from e
        self._tensorboard = SummaryWriter(str(self.path / "tensorboard"), flush_secs=10)

    @contextlib.contextmanager
    def exclusive(self):
        """Hold ``workdir/.lock`` while a run writes here: a second run on the same workdir stops at once
        with an error naming the holder's pid and host (only process 0 of a multi-process run takes it)."""
        if not self.writes:
            yield
            return
        with (self.path / ".lock").open("a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise WorkdirBusy(f"{self.path} is in use by another run ({f.read().strip() or 'unknown process'}); "
                                  "wait for it to finish, stop it, or give another --workdir") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            try:
                yield
                self.finish_saving()
            finally:
                if self._tensorboard is not None:
                    self._tensorboard.close()
                    self._tensorboard = None
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)

    def check_config(self, config: dict, *, free: tuple[str, ...] = (), allow_change: bool = False) -> None:
        """Before a run writes ``config.json``: if the workdir holds a run with checkpoints, its stored config
        must equal ``config`` except for the ``free`` fields (top-level names or dotted paths); otherwise a
        ValueError lists the differences.
        ``allow_change`` lets the run go on and appends the differences to ``config_changes.jsonl``."""
        stored_path = self.path / "config.json"
        if not stored_path.exists() or self.checkpoints.latest_step() is None:
            return
        stored = json.loads(stored_path.read_text())
        changes = {key: [old, new] for key, (old, new) in _differences(stored, json.loads(json.dumps(config))).items()
                   if key not in free and key.split(".")[0] not in free}
        if not changes:
            return
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        if not allow_change:
            raise ValueError(f"{self.path} holds a run with another configuration ({listed}); resume it unchanged, "
                             "give another --workdir, or pass --allow-config-change to go on with the new one")
        if self.writes:
            with (self.path / "config_changes.jsonl").open("a") as f:
                f.write(json.dumps({"at_step": self.checkpoints.latest_step(), "changes": changes}) + "\n")

    @property
    def checkpoints(self) -> ocp.CheckpointManager:
        if self._checkpoints is None:
            self._checkpoints = _manager(self.path / "checkpoints", self.max_to_keep, self.async_checkpoints)
        return self._checkpoints

    @property
    def best(self) -> ocp.CheckpointManager:
        if self._best is None:
            self._best = _manager(self.path / "best", BEST_KEPT)
        return self._best

    @property
    def writes(self) -> bool:
        return jax.process_index() == 0

    def log(self, step: int, **metrics: Any) -> None:
        if not self.writes:
            return
        with _writing(self.metrics_path), self.metrics_path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tensorboard is not None:
            for name, value in metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tensorboard.add_scalar(name, value, step)

    def read_metrics(self) -> list[dict]:
        """Every line of metrics.jsonl; a torn last line (a crash mid-write) is left out, said on stderr."""
        if not self.metrics_path.exists():
            return []
        lines = [line for line in self.metrics_path.read_text().splitlines() if line]
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if number < len(lines):
                    raise ValueError(f"{self.metrics_path}: line {number} is not JSON ({e}); only a torn last line "
                                     "is repaired on resume") from e
                print(f"acljax: {self.metrics_path}: dropping its last line, torn by an interrupted write",
                      file=sys.stderr)
        return rows

    def save(self, step: int, tree: Any) -> None:
        """Checkpoint ``tree`` as ``checkpoints/<step>``. With ``async_checkpoints`` the files are written in the
        background after the arrays are copied to the host: the call returns before they are on disk, and the
        checkpoint counts (and is sealed with its checksums) once it is complete, at the next save or
        :meth:`finish_saving`."""
        self.finish_saving()
        with _writing(self.path / "checkpoints" / str(step)):
            self.checkpoints.save(step, args=ocp.args.StandardSave(tree), force=True)
        self._unsealed = step
        if not self.async_checkpoints:
            self.finish_saving()

    def finish_saving(self) -> None:
        """Wait for a checkpoint being written in the background, then seal it."""
        if self._unsealed is None:
            return
        with _writing(self.path / "checkpoints" / str(self._unsealed)):
            self.checkpoints.wait_until_finished()
        seal(self.path / "checkpoints" / str(self._unsealed))
        self._unsealed = None

    def restore_latest(self, like: Any) -> tuple[int, Any]:
        """(step, tree) of the newest checkpoint, or (0, ``like``) when there is none."""
        step, tree = self._restore_newest_intact(like)
        kept = [m for m in self.read_metrics() if m["step"] <= step]
        if self.writes:
            self.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        if (self.path / "best").is_dir():  # best checkpoints the run had not reached yet at ``step``
            for later in [s for s in self.best.all_steps() if s > step]:
                self.best.delete(later)
            if self.best_metrics().get("step", 0) > step:
                kept_best = {s: m for s, m in self._best_history().items() if s <= step}
                self._write_best_metrics(kept_best)
        return step, tree

    def _best_history(self) -> dict[int, dict]:
        """Metrics of the kept best checkpoints, by step (best_history.json)."""
        path = self.path / "best_history.json"
        return {int(s): m for s, m in json.loads(path.read_text()).items()} if path.exists() else {}

    def _write_best_metrics(self, history: dict[int, dict]) -> None:
        kept = {s: history[s] for s in sorted(history)[-BEST_KEPT:]} if history else {}
        self.write_json("best_history.json", {str(s): m for s, m in kept.items()})
        self._best_metrics = kept[max(kept)] if kept else {}
        if kept:
            self.write_json("best.json", self._best_metrics)
        elif self.writes:
            (self.path / "best.json").unlink(missing_ok=True)

    def _restore_newest_intact(self, like: Any) -> tuple[int, Any]:
        """The newest checkpoint that restores; a damaged one is reported on stderr and an older one used.
        If none restores, the first error is raised (a run never restarts from scratch silently)."""
        errors = []
        for step in sorted(self.checkpoints.all_steps(), reverse=True):
            try:
                verify(self.path / "checkpoints" / str(step))
                tree = self.checkpoints.restore(step, args=ocp.args.StandardRestore(like))
            except Exception as e:  # orbax and tensorstore raise many kinds for damaged files
                errors.append(f"checkpoints/{step}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            for error in errors:
                print(f"acljax: {self.path}: {error}; resuming from the intact checkpoints/{step}", file=sys.stderr)
            return step, tree
        if errors:
            raise ValueError(f"{self.path}: no checkpoint could be restored ({'; '.join(errors)}); start a new "
                             "--workdir, or delete checkpoints/ here to start over")
        return 0, like

    def save_best(self, step: int, tree: Any, metrics: dict) -> None:
        """Replace the kept best checkpoint with ``tree`` and record ``metrics`` in best.json. Saving a step
        that is already there (a run resumed from before it) replaces it."""
        if step in self.best.all_steps():
            self.best.delete(step)
        with _writing(self.path / "best" / str(step)):
            self.best.save(step, args=ocp.args.StandardSave(tree), force=True)
            self.best.wait_until_finished()
            seal(self.path / "best" / str(step))
        self._write_best_metrics({**self._best_history(), step: {"step": step, **metrics}})

    def best_metrics(self) -> dict:
        """What :meth:`save_best` recorded (in this process, or earlier in best.json)."""
        if self._best_metrics is None:
            path = self.path / "best.json"
            self._best_metrics = json.loads(path.read_text()) if path.exists() else {}
        return self._best_metrics

    def restore_best(self, like: Any, step: int | None = None) -> tuple[int | None, Any]:
        """(step, tree) of the best checkpoint (the newest, or ``step``), or (None, ``like``) when there is none."""
        if not (self.path / "best").is_dir() or (step := step or self.best.latest_step()) is None:
            return None, like
        if step not in self.best.all_steps():
            raise FileNotFoundError(f"{self.path / 'best'}: no checkpoint of step {step} "
                                    f"(kept: {list(self.best.all_steps())})")
        verify(self.path / "best" / str(step))
        return step, self.best.restore(step, args=ocp.args.StandardRestore(like))

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write ``workdir/name`` (process 0 only)."""
        target = self.path / name
        if not self.writes:
            return target
        tmp = target.with_suffix(target.suffix + ".tmp")
        with _writing(target):
            tmp.write_text(json.dumps(obj, indent=2) + "\n")
            tmp.replace(target)
        return target
