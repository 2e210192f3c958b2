import jax
import pytest


@pytest.fixture
def x64():
    """Run a test with float64 enabled (for finite differences)."""
    with jax.enable_x64(True):
        yield
