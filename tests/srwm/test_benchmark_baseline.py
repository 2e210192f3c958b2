"""benchmarks/srwm_throughput.py --baseline: an earlier revision's acljax imported beside today's, and whether two
compiled programs are the same."""

import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from acljax.srwm import init_state, srwm_scan
from benchmarks import srwm_throughput


def _compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile()


def test_programs_traced_from_different_code_compare_equal_and_different_ones_do_not():
    x = jnp.arange(6.0)

    def first(v):
        return jnp.sin(v) * 2.0

    def second(v):  # the same computation, traced from other lines
        doubled = 2.0 * jnp.sin(v)
        return doubled

    text = srwm_throughput.program_text
    assert text(_compiled(first, x)) == text(_compiled(second, x))
    assert text(_compiled(lambda v: jnp.cos(v) * 2.0, x)) != text(_compiled(first, x))
    assert text(_compiled(lambda v: v * 0.5, x)) != text(_compiled(lambda v: v * 0.25, x))  # constants count


def test_a_revision_that_names_no_commit_is_refused():
    with pytest.raises(ValueError, match="--baseline must name a commit of .*, got 'no-such-revision'"):
        srwm_throughput.baseline_commit("no-such-revision")
    with pytest.raises(ValueError, match="got '--all'"):
        srwm_throughput.baseline_commit("--all")


@pytest.mark.skipif(shutil.which("git") is None or subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                                                    capture_output=True).returncode != 0,
                    reason="needs a git checkout")
def test_the_committed_revision_runs_beside_today():
    state = init_state(jax.random.key(0), 2, 4)
    x = jax.random.normal(jax.random.key(1), (2, 9, 2, 4))
    y, final = srwm_scan(state, x, impl="reversible")
    then = srwm_throughput.srwm_scan_at(srwm_throughput.baseline_commit("HEAD"))
    y_then, final_then = then(state, x, impl="reversible")
    assert type(final_then).__module__.startswith("acljax_")  # the revision's own package, not today's
    for a, b in zip(jax.tree.leaves((y_then, final_then)), jax.tree.leaves((y, final))):  # the same function: any
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))  # change since, to rounding
