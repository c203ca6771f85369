"""Disentangled conditioning (Berrada et al., 2024): the control strength's ends and per-sample
application, and two-scale guidance (both scales 1: the fully conditional model)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.guidance import two_scale_guidance
from flowjax.models import control_strength


def test_control_strength_ramps_from_noise_to_data_per_sample():
    t = jnp.asarray([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(control_strength(t), [0.0, (1 - np.cos(np.pi / 4)) / 2, 0.5, 1.0],
                               atol=1e-7)
    assert bool(jnp.all(jnp.diff(control_strength(jnp.linspace(0, 1, 50))) > 0))
    with pytest.raises(ValueError, match="one time per sample"):
        control_strength(jnp.asarray(0.5))


def test_two_scale_guidance_limits():
    keys = jax.random.split(jax.random.key(0), 3)
    none, semantic, full = (jax.random.normal(k, (4, 3)) for k in keys)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 1.0, 1.0), full, atol=1e-6)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 1.0, 0.0), semantic,
                               atol=1e-6)
    np.testing.assert_allclose(two_scale_guidance(none, semantic, full, 0.0, 0.0), none, atol=1e-6)
    guided = two_scale_guidance(none, semantic, full, 3.0, 2.0)
    np.testing.assert_allclose(guided, none + 3 * (semantic - none) + 2 * (full - semantic),
                               atol=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        two_scale_guidance(none, semantic, full[:2], 1.0, 1.0)
