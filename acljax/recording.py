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
import sys
import time
from pathlib import Path


def environment() -> dict:
    """Device, platform and versions of this process, stored beside every recorded figure."""
    from importlib.metadata import version

    import jax  # here, not at import: scripts set XLA_FLAGS before jax starts

    device = jax.devices()[0]
    return {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
            "jaxlib": version("jaxlib"), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "machine": platform.machine()}


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
