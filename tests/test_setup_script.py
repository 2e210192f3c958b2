"""scripts/setup.sh waits (within a bound) for apt's and dpkg's locks that another process holds, instead of failing
at once; its functions are run here by sourcing the script (sourcing runs no setup)."""

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).parents[1] / "scripts" / "setup.sh"
HOLD = ("import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(float(sys.argv[2]))")
DPKG_LOCK = Path("/var/lib/dpkg/lock-frontend")


def run(code: str, **env) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(["bash", "-c", f'source "{SETUP}" && {code}'], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable, **env})
    return done, time.monotonic() - start


def held(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holding an fcntl lock on ``path`` (as apt does) for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_lock_is_waited_for_then_taken(tmp_path):
    lock = tmp_path / "lock"
    with held(lock, 2):
        done, took = run(f'wait_for_lock "{lock}"')
    assert done.returncode == 0 and took >= 1.5, (took, done.stderr)
    assert f"waiting for {lock}, held by another apt or dpkg (up to 600 s)" in done.stderr


def test_the_wait_is_bounded_by_apt_lock_timeout(tmp_path):
    lock = tmp_path / "lock"
    with held(lock, 30) as holder:
        done, took = run(f'wait_for_lock "{lock}"', APT_LOCK_TIMEOUT="1")
        holder.kill()
    assert done.returncode == 1 and 1 <= took < 10
    assert f"{lock}: still held by another apt or dpkg after 1 s (APT_LOCK_TIMEOUT)" in done.stderr


def test_update_and_install_wait_for_the_locks(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls"\n')
    (stubs / "apt-get").chmod(0o755)
    done, _ = run("install_system_packages fonts-x", PATH=f"{stubs}:{os.environ['PATH']}", APT_LOCK_TIMEOUT="7")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["-o DPkg::Lock::Timeout=7 update -qq",
                                                             "-o DPkg::Lock::Timeout=7 install -y -qq fonts-x"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get") or not DPKG_LOCK.exists(),
                    reason="needs root and apt")
def test_apt_waits_for_a_held_dpkg_lock():
    """The real apt: `apt-get check` takes dpkg's frontend lock and changes nothing; held for 2 s by this
    process, the script's apt-get waits for it (a plain apt-get exits 100 at once)."""
    with DPKG_LOCK.open("a") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        release = threading.Timer(2, fcntl.lockf, (lock, fcntl.LOCK_UN))
        release.start()
        done, took = run("apt_get check")
        release.cancel()
    assert done.returncode == 0 and took >= 1.5, (took, done.stderr)
