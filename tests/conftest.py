import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from acljax.data.glyphs import NOTO_DIR

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True, scope="session")
def empty_data_cache(tmp_path_factory):
    """Every test starts from what a fresh machine has: an empty acljax data cache and no TFDS data, never
    the developer's own (tests that need data prepare it, or set their own folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACLJAX_DATA_DIR", str(tmp_path_factory.mktemp("acljax_data")))
        patch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("no_tfds")))
        yield


@pytest.fixture(scope="session")
def quickstart_on_empty_cache(tmp_path_factory):
    """Runs ``acljax quickstart --steps 2`` (the README's command with fewer steps) with a new, empty
    ``ACLJAX_DATA_DIR``; returns (completed process, data dir, workdir)."""
    if not NOTO_DIR.exists() and not os.environ.get("CI"):
        pytest.skip("needs the Noto fonts (bash scripts/setup.sh installs them as root); CI always runs this")
    data, workdir = tmp_path_factory.mktemp("fresh_cache"), tmp_path_factory.mktemp("quickstart")
    command = Path(sys.executable).with_name("acljax")  # the entry point pip installed beside this python
    done = subprocess.run([str(command), "quickstart", "--workdir", str(workdir), "--steps", "2"], cwd=ROOT,
                          env={**os.environ, "ACLJAX_DATA_DIR": str(data)}, capture_output=True, text=True,
                          timeout=900)
    return done, data, workdir


@pytest.fixture
def x64():
    """Run a test with float64 enabled (for finite differences)."""
    with jax.enable_x64(True):
        yield
