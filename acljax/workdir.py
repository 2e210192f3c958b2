"""A run's working directory: JSON-lines metrics and resumable orbax checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

BEST_KEPT = 2  # the previous best survives until a new one is saved, so a resume can fall back to it
CHECKSUMS = "sha256sums.json"  # in each checkpoint's folder: {relative path: sha256 of the file}
SEALED_SINCE = "sealed_since.json"  # next to the checkpoints: {"step": the first step sealed there}


class WorkdirBusy(ValueError):
    """Another run holds the workdir's lock."""


class ShapeMismatch(ValueError):
    """A checkpoint holds arrays of other shapes than the tree it is restored into."""


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


def _write_failure(error: BaseException) -> str | None:
    """Why a write failed (``os.strerror``), for an OSError or for tensorstore's errors, which carry the
    system's error code in their text (``[os_error_code='28']``); None for any other exception."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    code = re.search(r"\[os_error_code='(\d+)'\]", str(error))
    return os.strerror(int(code[1])) if code else None


class _DropWriteFailures(logging.Filter):
    """Drops what orbax's threads and asyncio log about a failed write (a traceback each): :func:`_writing`
    reports it as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not ((error is not None and _write_failure(error)) or "[os_error_code=" in record.getMessage())


def _drop_closed_loop_callbacks(unraisable, previous) -> None:
    """When one array of an orbax save or restore fails (a full disk), orbax closes the call's event loop while
    tensorstore still reads or writes the others; each that finishes then reports "Event loop is closed" as an
    unraisable error, a traceback on stderr. Those are dropped: the failure itself is raised."""
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed" and unraisable.object is None):
        previous(unraisable)


@functools.cache
def _quiet_write_failures() -> None:
    """Once per process, at its first checkpoint write (not at import): the tracebacks orbax and asyncio print
    for a failed write are dropped, since :func:`_writing` reports the failure in one line. Only those: other
    log records and unraisable errors pass as before."""
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(_DropWriteFailures())
    sys.unraisablehook = functools.partial(_drop_closed_loop_callbacks, previous=sys.unraisablehook)


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write (disk full, read-only folder) becomes one line naming the file; what was written
    before stays intact, so the run resumes once the cause is fixed."""
    _quiet_write_failures()
    try:
        yield
    except Exception as e:  # OSError, or tensorstore's ValueError naming the system's error
        if (reason := _write_failure(e)) is None:
            raise
        raise ValueError(f"cannot write {path} ({reason}); the run stops here and resumes from its last "
                         "checkpoint once there is room or permission") from e


def _file_digests(folder: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKSUMS:
            with path.open("rb") as f:
                digests[str(path.relative_to(folder))] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def seal(folder: Path) -> None:
    """Write ``folder/sha256sums.json`` for a finished checkpoint, and record in the folder above that its
    checkpoints are sealed from this step on (single-process runs: with several processes, each may see only
    its own files)."""
    if jax.process_count() > 1:
        return
    _write_atomically(folder / CHECKSUMS, json.dumps(_file_digests(folder), indent=0) + "\n")
    if (recorded := _recorded_since(folder.parent)) is None or int(folder.name) < recorded:
        _write_atomically(folder.parent / SEALED_SINCE, json.dumps({"step": int(folder.name)}) + "\n")


def _recorded_since(root: Path) -> int | None:
    """The step in ``root/sealed_since.json``; None when absent or unreadable (then the sums files decide)."""
    try:
        return int(json.loads((root / SEALED_SINCE).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sealed_since(root: Path) -> int | None:
    """The first step sealed among the checkpoints in ``root``: recorded in ``sealed_since.json``, or the oldest
    that has a ``sha256sums.json`` (runs of acljax before the record); None when none is."""
    steps = [int(p.parent.name) for p in root.glob(f"*/{CHECKSUMS}") if p.parent.name.isdigit()]
    if (recorded := _recorded_since(root)) is not None:
        steps.append(recorded)
    return min(steps, default=None)


def verify(folder: Path) -> None:
    """Check a checkpoint's files against its ``sha256sums.json``; a ValueError names the first file that is
    missing or altered. A checkpoint without the file is damaged if checkpoints were sealed here before it
    (:func:`sealed_since`); older ones (acljax before checksums) pass unchecked."""
    sums = folder / CHECKSUMS
    if jax.process_count() > 1:
        return
    if not sums.exists():
        since = sealed_since(folder.parent)
        if since is not None and int(folder.name) >= since:
            raise ValueError(f"{sums}: missing, while the checkpoints here are sealed from step {since} on (the "
                             "checkpoint was damaged, or its writing interrupted)")
        return
    expected = json.loads(sums.read_text())
    found = _file_digests(folder)
    for name, digest in expected.items():
        if found.get(name) != digest:
            raise ValueError(f"{folder / name}: {'missing' if name not in found else 'sha256 mismatch'} "
                             f"(the file changed after the checkpoint was written)")


def _leaf_name(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _shapes(tree: Any, kinds: tuple[type, ...] = (object,)) -> dict[str, tuple[int, ...]]:
    return {_leaf_name(path): tuple(getattr(leaf, "shape", ()))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if isinstance(leaf, kinds)}


def check_shapes(folder: Path, like: Any) -> None:
    """The arrays of checkpoint ``folder`` have the shapes of their namesakes in ``like``, read from its
    metadata before any array is (a restore that fails part-way leaves reads running that print tracebacks).
    A ShapeMismatch names the checkpoint and the first arrays that differ. Only JAX arrays are compared: a
    numpy array in ``like`` is restored as saved, whatever its shape."""
    saved = _shapes(ocp.StandardCheckpointHandler().metadata(folder / "default"))
    differ = [f"{name}: {saved[name]} there, {shape} here" for name, shape in
              _shapes(like, (jax.Array, jax.ShapeDtypeStruct)).items() if name in saved and saved[name] != shape]
    if differ:
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise ShapeMismatch(f"{folder} holds arrays of other shapes than this model's ({'; '.join(differ[:3])}{more}): "
                            "it was written by a run of another model configuration; give that configuration, or "
                            "another workdir")


def _manager(path: Path, asynchronous: bool = False) -> ocp.CheckpointManager:
    """Old checkpoints are deleted by :func:`_prune` once the new one is sealed, not by orbax before
    that: a kill in between leaves a sealed checkpoint to resume from."""
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
        max_to_keep=None, enable_async_checkpointing=asynchronous, create=True))


def _restore_first_intact(manager: ocp.CheckpointManager, steps: list[int], like: Any
                          ) -> tuple[int | None, Any, dict[int, str]]:
    """(step, tree) of the first of ``steps`` that verifies and restores, or (None, None), and {step: error}
    of those before it that did not. Arrays of other shapes than ``like``'s are an error at once."""
    damaged = {}
    for step in steps:
        folder = Path(manager.directory) / str(step)
        try:
            verify(folder)
            check_shapes(folder, like)
            return step, manager.restore(step, args=ocp.args.StandardRestore(like)), damaged
        except ShapeMismatch:
            raise
        except Exception as e:  # orbax and tensorstore raise many kinds for damaged files
            damaged[step] = f"{folder.parent.name}/{step}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None, None, damaged


def _prune(manager: ocp.CheckpointManager, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    for step in sorted(manager.all_steps())[:-keep]:
        manager.delete(step)


class Workdir:
    """``workdir/metrics.jsonl`` (one JSON object per line), ``workdir/checkpoints/<step>`` and, for runs
    that keep their best parameters, ``workdir/best/<step>`` with ``workdir/best.json``.

    On resume, metric lines logged after the restored checkpoint are dropped, so a resumed run's
    log reads exactly like an uninterrupted one; so are best checkpoints saved after it (a run killed
    between saving ``best/N`` and ``checkpoints/N`` saves ``best/N`` again when it gets there), and a
    last metrics line torn by a crash mid-write. Every checkpoint gets a ``sha256sums.json`` of its files
    once written (and only then are older ones deleted); a restore checks it first, so a file altered later
    (bit rot, a bad copy) or a lost sums file is found rather than loaded: a damaged newest checkpoint falls
    back to the previous one (the damaged one is deleted and written again), a damaged best to the previous
    best. ``create=False`` opens an existing folder read-only.
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
        self.read_only = not create  # a damaged checkpoint is passed over, not deleted
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

    def check_config(self, config: dict, *, free: tuple[str, ...] = (), allow_change: bool = False,
                     migrate: Callable[[dict], dict] | None = None) -> None:
        """Before a run writes ``config.json``: if the workdir holds a run with checkpoints, its stored config
        (brought to today's form by ``migrate``, if given) must equal ``config`` except for the ``free`` fields
        (top-level names or dotted paths); otherwise a ValueError lists the differences.
        ``allow_change`` lets the run go on and appends the differences to ``config_changes.jsonl``."""
        stored_path = self.path / "config.json"
        if not stored_path.exists() or self.checkpoints.latest_step() is None:
            return
        stored = json.loads(stored_path.read_text())
        stored = stored if migrate is None else migrate(stored)
        changes = {key: [old, new] for key, (old, new) in _differences(stored, json.loads(json.dumps(config))).items()
                   if key not in free and key.split(".")[0] not in free}
        if not changes:
            return
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        if not allow_change:
            raise ValueError(f"{self.path} holds a run with another configuration ({listed}); resume it unchanged, "
                             "give another --workdir, or pass --allow-config-change to go on with the new one")
        self.append_line("config_changes.jsonl", {"at_step": self.checkpoints.latest_step(), "changes": changes})

    @property
    def checkpoints(self) -> ocp.CheckpointManager:
        if self._checkpoints is None:
            self._checkpoints = _manager(self.path / "checkpoints", self.async_checkpoints)
        return self._checkpoints

    @property
    def best(self) -> ocp.CheckpointManager:
        if self._best is None:
            self._best = _manager(self.path / "best")
        return self._best

    @property
    def writes(self) -> bool:
        return jax.process_index() == 0

    def log(self, step: int, **metrics: Any) -> None:
        """Append one line ``{"step": step, **metrics}`` to the metric log (and TensorBoard when mirrored)."""
        self.append_line(self.metrics_path.name, {"step": step, **metrics})
        if self._tensorboard is not None:
            for name, value in metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tensorboard.add_scalar(name, value, step)

    def read_metrics(self) -> list[dict]:
        """Every line of metrics.jsonl; a torn last line (a crash mid-write) is left out, said on stderr."""
        return self.read_lines(self.metrics_path.name)

    def read_lines(self, name: str) -> list[dict]:
        """Every JSON line of ``workdir/name`` (none if it is absent); a torn last line (a crash mid-write) is
        left out, said on stderr."""
        path = self.path / name
        if not path.exists():
            return []
        lines = [line for line in path.read_text().splitlines() if line]
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if number < len(lines):
                    raise ValueError(f"{path}: line {number} is not JSON ({e}); only a torn last line "
                                     "is repaired on resume") from e
                print(f"acljax: {path}: dropping its last line, torn by an interrupted write", file=sys.stderr)
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
        """Wait for a checkpoint being written in the background, seal it, then delete the checkpoints beyond
        the ``max_to_keep`` newest."""
        if self._unsealed is None:
            return
        with _writing(self.path / "checkpoints" / str(self._unsealed)):
            self.checkpoints.wait_until_finished()
            seal(self.path / "checkpoints" / str(self._unsealed))
        self._unsealed = None
        _prune(self.checkpoints, self.max_to_keep)

    def restore_latest(self, like: Any) -> tuple[int, Any]:
        """(step, tree) of the newest intact checkpoint, or (0, ``like``) when there is none. Damaged ones are
        reported on stderr and deleted (the run writes them again); if none restores, the first error is
        raised (a run never restarts from scratch silently)."""
        steps = sorted(self.checkpoints.all_steps(), reverse=True)
        step, tree, damaged = _restore_first_intact(self.checkpoints, steps, like)
        if step is None:
            if damaged:
                raise ValueError(f"{self.path}: no checkpoint could be restored ({'; '.join(damaged.values())}); "
                                 "start a new --workdir, or delete checkpoints/ here to start over")
            step, tree = 0, like
        for error in damaged.values():
            print(f"acljax: {self.path}: {error}; resuming from the intact checkpoints/{step}, and writing the "
                  "later ones again", file=sys.stderr)
        for later in damaged:
            self.checkpoints.delete(later)
        kept = [m for m in self.read_metrics() if m["step"] <= step]
        if self.writes:
            self.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        if (self.path / "best").is_dir():  # best checkpoints the run had not reached yet at ``step``
            for later in [s for s in self.best.all_steps() if s > step]:
                self.best.delete(later)
            if self.best_metrics().get("step", 0) > step:
                self._write_best_metrics({s: m for s, m in self._best_history().items() if s <= step})
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
        _prune(self.best, BEST_KEPT)

    def best_metrics(self) -> dict:
        """What :meth:`save_best` recorded (in this process, or earlier in best.json)."""
        if self._best_metrics is None:
            path = self.path / "best.json"
            self._best_metrics = json.loads(path.read_text()) if path.exists() else {}
        return self._best_metrics

    def restore_best(self, like: Any, step: int | None = None) -> tuple[int | None, Any]:
        """(step, tree) of the best checkpoint (the newest, or ``step``), or (None, ``like``) when there is none.
        If it is damaged (or gone) the previous kept best is used, said on stderr; unless the workdir is
        read-only, the damaged one is deleted and best.json describes the one used."""
        kept = sorted(self.best.all_steps(), reverse=True) if (self.path / "best").is_dir() else []
        if (step := step or next(iter(kept), None)) is None:
            return None, like
        if not [s for s in kept if s <= step]:
            raise FileNotFoundError(f"{self.path / 'best'}: no checkpoint of step {step} (kept: {kept[::-1]})")
        found, tree, damaged = _restore_first_intact(self.best, [s for s in kept if s <= step], like)
        if step not in kept:
            damaged = {step: f"best/{step}: missing", **damaged}
        if found is None:
            raise ValueError(f"{self.path}: no best checkpoint could be restored ({'; '.join(damaged.values())})")
        for error in damaged.values():
            print(f"acljax: {self.path}: {error}; using the previous best, best/{found}", file=sys.stderr)
        if damaged and not self.read_only:
            for gone in set(damaged) & set(kept):
                self.best.delete(gone)
            self._write_best_metrics({s: m for s, m in self._best_history().items() if s not in damaged})
        return found, tree

    def append_line(self, name: str, obj: Any) -> None:
        """Append ``obj`` as one JSON line to ``workdir/name`` (process 0 only)."""
        if not self.writes:
            return
        with _writing(self.path / name), (self.path / name).open("a") as f:
            f.write(json.dumps(obj) + "\n")

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
