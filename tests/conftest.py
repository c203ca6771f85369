"""Shared pytest fixtures, and the XLA flags of the test processes.

The tests are dominated by compile time, not run time: XLA's backend optimisations are turned
off (the same programs, compiled faster). The flags go into the environment before JAX starts,
so that the worker processes the tests launch inherit them and compile exactly as the test
process does (a resumed run is compared bit for bit with an uninterrupted one).
"""

import os

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import jax  # noqa: E402
import pytest


@pytest.fixture
def x64():
    """Runs a test with float64 enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield
