import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from acljax.data.glyphs import NOTO_DIR

ROOT = Path(__file__).parents[1]
COMPILE_CACHE = "JAX_COMPILATION_CACHE_DIR"


# XLA settings that compile faster (flag: value), each added to XLA_FLAGS unless the caller set that flag there.
FAST_COMPILE_FLAGS = {
    "xla_backend_optimization_level": "0",  # no LLVM optimisation
    "xla_cpu_use_fusion_emitters": "false",  # the CPU backend's older loop emitters for fusions
}
# XLA aborts on a flag it does not know, and the older emitters are on their way out of XLA: that flag only with the
# jaxlib releases it was tested with (.ci/tested_versions.json)
FLAGS_TESTED_UP_TO = {"xla_cpu_use_fusion_emitters": (0, 10)}


def _jaxlib_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("jaxlib").split(".")[:2] if part.isdigit())


def pytest_configure(config):
    """XLA compiling for speed of compilation: most of the suite's time is compiling small programs once (many of
    them single operations run eagerly), and ``FAST_COMPILE_FLAGS`` compile them in about a third of the time (level 0
    alone: about 60%; the older fusion emitters take about 40% off that, tests/srwm/test_srwm_core.py and
    tests/nn/test_modules.py 95 -> 51 s on a 2-core Intel Xeon VM). Results round differently from XLA's defaults,
    as they do from CPU to CPU, which the tests hold to. A flag already in XLA_FLAGS is kept
    (scripts/test_on_other_cpus.sh xla-default runs the suite at XLA's defaults). Set here, before any test module
    is imported, so before JAX starts its backend; inherited by the xdist workers and every process a test starts.

    One JAX compilation cache for the whole run, shared by its workers and the processes tests start
    (a killed and resumed run, the installed ``acljax`` command): a program compiled once is read back, not
    compiled again. Made empty by the process that starts the run (the xdist controller, or the only process)
    and removed at its end; a cache the caller set (the variable already there) is used as it is."""
    for flag, value in FAST_COMPILE_FLAGS.items():
        if flag in FLAGS_TESTED_UP_TO and _jaxlib_version() > FLAGS_TESTED_UP_TO[flag]:
            continue
        if flag not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{flag}={value}".strip()
    if COMPILE_CACHE not in os.environ:
        import tempfile

        os.environ[COMPILE_CACHE] = tempfile.mkdtemp(prefix="acljax-tests-jit-")
        config.stash[_OWN_CACHE] = os.environ[COMPILE_CACHE]
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
    jax.config.update("jax_compilation_cache_dir", os.environ[COMPILE_CACHE])  # jax read the variable on import
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_unconfigure(config):
    if _OWN_CACHE in config.stash:
        shutil.rmtree(config.stash[_OWN_CACHE], ignore_errors=True)


_OWN_CACHE = pytest.StashKey[str]()


@pytest.fixture(autouse=True, scope="session")
def empty_data_cache(tmp_path_factory):
    """Every test starts from what a fresh machine has: an empty acljax data cache and no TFDS data, never
    the developer's own (tests that need data prepare it, or set their own folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACLJAX_DATA_DIR", str(tmp_path_factory.mktemp("acljax_data")))
        patch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("no_tfds")))
        yield


@pytest.fixture
def new_meta_trainers():
    """For a test that patches what meta-training programs are traced from, or counts their compilations:
    ``meta_train`` builds its programs anew instead of reusing those ``trainer_for`` kept from an earlier run of
    the same configuration in this process (another test's)."""
    from acljax.acl.trainer import trainer_for

    trainer_for.cache_clear()
    yield
    trainer_for.cache_clear()  # nor does a later test get this one's patched programs


@pytest.fixture(scope="session")
def installed_acljax(tmp_path_factory):
    """acljax as a user gets it: a wheel built from this checkout, installed (not editable) into a new
    virtual environment; the packages it depends on come from this one's site-packages (a path in a .pth
    file: this environment's own .pth files, among them the editable install of acljax, are not run).
    Returns the new environment's bin folder."""
    import sysconfig

    tmp = tmp_path_factory.mktemp("installed")
    source = tmp / "source"  # built from a copy: setuptools writes build/ and *.egg-info where it builds
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                                "__pycache__", ".*_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    python = tmp / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies_from_the_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    [wheel] = (tmp / "dist").glob("acljax-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    return python.parent


@pytest.fixture(scope="session")
def fresh_cache(tmp_path_factory):
    """A new, empty data cache for the commands run from the installed wheel (shared by them)."""
    if not NOTO_DIR.exists() and not os.environ.get("CI"):
        pytest.skip("needs the Noto fonts (bash scripts/setup.sh installs them as root); CI always runs this")
    return tmp_path_factory.mktemp("fresh_cache")


def run_installed(installed_acljax, fresh_cache, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """``acljax ARGS`` from the installed wheel, run in ``tmp_path`` (not the checkout) on ``fresh_cache``."""
    return subprocess.run([str(installed_acljax / "acljax"), *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "ACLJAX_DATA_DIR": str(fresh_cache)}, timeout=900)


@pytest.fixture(scope="session")
def quickstart_on_empty_cache(installed_acljax, fresh_cache, tmp_path_factory):
    """Runs ``acljax quickstart --steps 2`` (the README's command with fewer steps) from the installed wheel,
    in an empty folder, with a new, empty ``ACLJAX_DATA_DIR``; returns (completed process, data dir, workdir)."""
    workdir = tmp_path_factory.mktemp("quickstart")
    done = run_installed(installed_acljax, fresh_cache, workdir, "quickstart", "--workdir", ".", "--steps", "2")
    return done, fresh_cache, workdir


@pytest.fixture
def experiment_script():
    """Loads an experiment file of experiments/ as a module: ``experiment_script("hsu_split_mnist").EXPERIMENT``."""

    from acljax.configs import run_file

    return lambda name: run_file(ROOT / "experiments" / f"{name}.py", f"experiment {name}")


@pytest.fixture
def x64():
    """Run a test with float64 enabled (for finite differences)."""
    with jax.enable_x64(True):
        yield
