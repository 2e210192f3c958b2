"""Where scripts save their results, and the environment those results were measured in.

Benchmark and experiment scripts write under ``runs/<script>/`` by default, so running them never
rewrites the results recorded in the repository; ``--record`` writes into the script's tracked
``results/`` folder instead (the maintainers' recorded runs).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path


def environment() -> dict:
    """Device, platform and versions of this process, stored beside every recorded figure."""
    import jax  # here, not at import: scripts set XLA_FLAGS before jax starts
    import jaxlib

    device = jax.devices()[0]
    return {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
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
