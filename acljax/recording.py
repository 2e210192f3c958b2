"""Where scripts save their results, and the environment those results were measured in.

Benchmark and experiment scripts write under ``runs/<script>/`` by default, so running them never
rewrites the results recorded in the repository; ``--record`` writes into the script's tracked
``results/`` folder instead (the maintainers' recorded runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")  # versions recorded beside jax's


def git_state(repository: str | Path = Path(__file__).parents[1]) -> dict:
    """{"git_commit": the commit checked out in the git repository whose top folder is ``repository`` (by
    default acljax's checkout), "git_dirty": whether tracked files differ from it (untracked ones do not
    count)}; both None where ``repository`` is not such a top folder (an installed wheel, even one in a virtual
    environment inside a checkout), without git, or when git fails."""
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", str(repository), *args], capture_output=True,
                              text=True, timeout=30)

    unknown = {"git_commit": None, "git_dirty": None}
    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(repository).resolve():
            return unknown
        head, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return unknown
    if head.returncode != 0 or dirty.returncode != 0:
        return unknown
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name as Linux reports it ("Intel(R) Xeon(R) Processor"), None where it does not."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def environment() -> dict:
    """Device (kind, platform, count), versions (jax, jaxlib, flax, optax, orbax, numpy, Python), the CPU (model,
    cores, architecture) and the git commit of this process, stored beside every recorded figure."""
    from importlib.metadata import PackageNotFoundError, version

    import jax  # here, not at import: scripts set XLA_FLAGS before jax starts

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    device = jax.devices()[0]
    return {"device": device.device_kind, "platform": device.platform, "device_count": jax.device_count(),
            "jax": jax.__version__, **{package.removesuffix("-checkpoint"): installed(package) for package in PACKAGES},
            "python": platform.python_version(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            **git_state()}


def provenance(argv: list[str] | None = None) -> dict:
    """:func:`environment` with the command line and the date and time (UTC) of this process."""
    return {**environment(), "command": " ".join(sys.argv if argv is None else argv),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def add_output_arguments(parser: argparse.ArgumentParser, script: str | Path) -> None:
    """``--out DIR`` and ``--record`` for a script at path ``script`` (pass ``__file__``)."""
    script = Path(script)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the results (default: runs/{script.stem}/)")
    parser.add_argument("--record", action="store_true",
                        help=f"write into {script.parent.name}/results/, the results recorded in the repository "
                             "(for maintainers; overwrites them)")


def output_dir(args: argparse.Namespace, script: str | Path) -> Path:
    """The folder chosen by :func:`add_output_arguments`' options (created)."""
    script = Path(script)
    if args.record and args.out is not None:
        raise ValueError("--record writes into the recorded results folder; give either --record or --out, not both")
    out = script.parent / "results" if args.record else args.out or Path("runs") / script.stem
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_rows(rows: list[dict], args: argparse.Namespace, script: str | Path, filename: str,
              argv: list[str] | None = None) -> Path:
    """Stamp every row with the date and the command that produced it, and write them as JSON to
    ``output_dir(args, script) / filename``; returns that path."""
    command = " ".join([Path(script).name, *(sys.argv[1:] if argv is None else argv)])
    for row in rows:
        row.update(date=time.strftime("%Y-%m-%d"), command=command)
    out = output_dir(args, script) / filename
    out.write_text(json.dumps(rows, indent=1) + "\n")
    return out
