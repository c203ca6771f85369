"""Shared pytest fixtures."""

import jax
import pytest


@pytest.fixture
def x64():
    """Runs a test with float64 enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield
