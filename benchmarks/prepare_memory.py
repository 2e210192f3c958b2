"""Peak memory of ``acljax data prepare`` against the size of what it prepares.

    python benchmarks/prepare_memory.py [--npz-mb 470]

Each data set is prepared into a new empty cache by its own Python process, which reports its peak
resident memory (VmHWM, Linux); a process that only imports acljax.data gives the baseline. Sources: Fashion-MNIST
from the Debian package (idx files), the rendered glyph set, and a random ``.npz`` of about
``--npz-mb`` MB of images. Writes prepare_memory_<platform>.json under runs/prepare_memory/
(--record: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from acljax.recording import add_output_arguments, environment, save_rows

CHILD = r"""
import json, re, sys
from pathlib import Path
from acljax.data import registry
source = sys.argv[2] or None
if sys.argv[1] != "-":
    registry.prepare(sys.argv[1], source, progress=False)
peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))  # this process only
print(json.dumps({"peak_rss_mb": peak_kb / 1024}))
"""


def peak_rss_mb(name: str, source: str, cache: Path) -> float:
    """Peak RSS (MB) of a fresh process preparing ``name`` (``-``: only importing) into ``cache``."""
    done = subprocess.run([sys.executable, "-c", CHILD, name, source], capture_output=True, text=True, check=True,
                          env={"ACLJAX_DATA_DIR": str(cache), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.splitlines()[-1])["peak_rss_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npz-mb", type=float, default=470.0, help="size of the random .npz images (MB)")
    add_output_arguments(parser, __file__)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = int(args.npz_mb * 1e6 // 784)
        rng = np.random.default_rng(0)
        np.savez(tmp / "random.npz", x=rng.integers(0, 256, (n, 28, 28), np.uint8), y=rng.integers(0, 10, n))
        baseline = peak_rss_mb("-", "", tmp / "empty")
        for name, source in (("fashion_mnist", ""), ("glyphs", ""), ("random", str(tmp / "random.npz"))):
            cache = tmp / f"cache_{name}"
            peak = peak_rss_mb(name, source, cache)
            size = sum(p.stat().st_size for p in (cache / name).glob("*.npz")) / 1e6
            rows.append({"data_set": name, "prepared_mb": round(size, 1), "peak_rss_mb": round(peak, 1),
                         "import_only_rss_mb": round(baseline, 1),
                         "peak_over_size": round((peak - baseline) / size, 2), **environment()})
            print(f"{name:14s} prepared {size:7.1f} MB  peak RSS {peak:7.1f} MB  (import only {baseline:.1f} MB)")
    out = save_rows(rows, args, __file__, f"prepare_memory_{rows[0]['platform']}.json", argv)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
