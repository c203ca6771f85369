"""The toy distributions on the torus and the sphere: deterministic batches on the manifold,
normalised closed-form densities, samplers that match them, and their grain pipeline."""

import math

import numpy as np
import pytest

from flowjax import data
from flowjax.data.manifold_toy import SPHERE_VMF, TORUS_GAUSSIANS

TWO_PI = 2.0 * math.pi


def test_batches_are_deterministic_and_on_the_manifold():
    torus = data.toy_batch("torus_gaussians", 4096, seed=0, index=3)
    sphere = data.toy_batch("sphere_vmf", 4096, seed=0, index=3)
    np.testing.assert_array_equal(torus, data.toy_batch("torus_gaussians", 4096, seed=0, index=3))
    assert not np.array_equal(torus, data.toy_batch("torus_gaussians", 4096, seed=0, index=4))
    assert torus.shape == (4096, 2) and sphere.shape == (4096, 3)
    assert torus.dtype == sphere.dtype == np.float32
    assert np.all((torus >= 0.0) & (torus < TWO_PI))
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 1.0, rtol=1e-6)
    assert data.toy_event_shape("sphere_vmf") == (3,)
    assert str(data.toy_manifold("torus_gaussians")) == "FlatTorus(dim=2)"
    assert data.toy_manifold("checkerboard") is None


def test_densities_integrate_to_one():
    # Midpoint rule on the square [0, 2 pi)^2 ...
    g = (np.arange(400) + 0.5) * TWO_PI / 400
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    torus_mass = np.exp(data.log_density("torus_gaussians", grid)).sum() * (TWO_PI / 400) ** 2
    # ... and in spherical coordinates, dA = sin(theta) d theta d phi.
    theta = (np.arange(400) + 0.5) * math.pi / 400
    phi = (np.arange(800) + 0.5) * TWO_PI / 800
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    points = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=-1)
    density = np.exp(np.asarray(data.log_density("sphere_vmf", points.astype(np.float32))))
    sphere_mass = np.sum(density * np.sin(th)) * (math.pi / 400) * (TWO_PI / 800)
    np.testing.assert_allclose([torus_mass, sphere_mass], 1.0, rtol=1e-3)


def test_samplers_match_their_densities():
    """First moments in closed form: a wrapped normal has E[e^{ix}] = e^{i mu - s^2/2}; a
    von Mises-Fisher on S^2 has E[x] = (coth c - 1/c) mu."""
    torus = data.toy_batch("torus_gaussians", 200_000, seed=1, index=0).astype(np.float64)
    m = TORUS_GAUSSIANS
    expected = np.sum(
        m.weights[:, None] * np.exp(1j * m.centres - 0.5 * m.spreads[:, None] ** 2), axis=0
    )
    np.testing.assert_allclose(np.mean(np.exp(1j * torus), axis=0), expected, atol=5e-3)
    sphere = data.toy_batch("sphere_vmf", 200_000, seed=1, index=0).astype(np.float64)
    m = SPHERE_VMF
    mean_length = 1.0 / np.tanh(m.spreads) - 1.0 / m.spreads
    expected = np.sum((m.weights * mean_length)[:, None] * m.centres, axis=0)
    np.testing.assert_allclose(sphere.mean(axis=0), expected, atol=5e-3)


def test_pipeline_and_metrics_know_the_manifold_toys():
    config = dict(source="toy", name="sphere_vmf")
    assert data.event_shape(config) == (3,)
    batch = next(data.build_dataset(config, global_batch_size=8, seed=0))
    np.testing.assert_array_equal(batch["x"], data.toy_batch("sphere_vmf", 8, seed=0, index=0))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        data.log_density("sphere_vmf", np.zeros((4, 2)))
