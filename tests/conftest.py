"""Shared pytest fixtures, and the XLA flags of the test processes.

The default run (the fast tests) is dominated by compile time, not run time: XLA's backend
optimisations are turned off there (the same programs, compiled faster). A run that selects the
slow tests (`-m slow`), long trainings whose run time dominates, keeps XLA's defaults. The flags
go into the environment before JAX starts its backend, so that the worker processes the tests
launch inherit them and compile exactly as the test process does (a resumed run is compared bit
for bit with an uninterrupted one).
"""

import os

import jax
import pytest

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def pytest_configure(config):
    marks = config.option.markexpr or ""
    if "slow" in marks and "not slow" not in marks:
        return
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()


@pytest.fixture
def x64():
    """Runs a test with float64 enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield
