"""Toy distributions on manifolds with exact densities, for Riemannian flow matching.

Flow Matching on General Geometries (Chen & Lipman, 2024) trains on data on the sphere S^2
(earth-science event locations) and on flat tori (protein torsion angles); these two mixtures are
small stand-ins whose densities are known in closed form, so a trained model's held-out
log-likelihood can be compared with the truth. Densities are w.r.t. the Riemannian volume (area
on S^2, d theta_1 d theta_2 on T^2), the measure of `flowjax.solvers.riemannian_log_likelihood`.

torus_gaussians (on FlatTorus(2), angles in [0, 2 pi)^2)
    A mixture of 4 wrapped isotropic Gaussians, component k with weight w_k, mean mu_k and
    standard deviation s_k (`TORUS_GAUSSIANS`): x = (mu_k + s_k e) mod 2 pi, e ~ N(0, I). Its
    density is sum_k w_k prod_i sum_n N(x_i + 2 pi n; mu_ki, s_k^2), the wrapping sum over n
    taken for |n| <= 2 (the terms left out are below exp(-(4 pi)^2 / (2 s^2)) < 1e-30 for
    s <= 1). The first component sits at a corner of the square, so its mass wraps across both
    seams.
sphere_vmf (on Sphere(2), unit vectors in R^3)
    A mixture of 4 von Mises-Fisher distributions (`SPHERE_VMF`), weight w_k, mean direction mu_k,
    concentration c_k, with density on S^2
        f(x; mu, c) = c / (2 pi (1 - exp(-2 c))) exp(c (mu . x - 1)) = c e^{c mu.x} / (4 pi sinh c).
    Sampled exactly (Wood, 1994; closed form on S^2): the cosine to the mean is
    w = 1 + log(u + (1 - u) exp(-2 c)) / c with u ~ U[0, 1), and the direction around mu is
    uniform.

Samplers are vectorised NumPy functions of a `numpy.random.Generator` returning float32 arrays
of shape (n, 2) and (n, 3); log densities are pure `jax.numpy` (jit-safe) of points (..., 2)
and (..., 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import logsumexp

from flowjax.manifolds import FlatTorus, Manifold, Sphere


class Mixture(NamedTuple):
    """Weights (K,), centres (K, n) and spreads (K,) of a mixture on a manifold."""

    weights: np.ndarray
    centres: np.ndarray
    spreads: np.ndarray


TORUS_GAUSSIANS = Mixture(
    weights=np.array([0.3, 0.3, 0.2, 0.2]),
    centres=np.array([[0.3, 5.9], [math.pi, math.pi], [4.7, 1.6], [1.6, 3.9]]),
    spreads=np.array([0.5, 0.6, 0.35, 0.35]),  # standard deviations
)
_VMF_DIRECTIONS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 1.0, -1.0], [0.0, -1.0, 0.3]])
SPHERE_VMF = Mixture(
    weights=np.array([0.3, 0.3, 0.2, 0.2]),
    centres=_VMF_DIRECTIONS / np.linalg.norm(_VMF_DIRECTIONS, axis=1, keepdims=True),
    spreads=np.array([20.0, 15.0, 25.0, 10.0]),  # concentrations
)
_WRAPS = np.arange(-2, 3)


def _torus_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    m = TORUS_GAUSSIANS
    k = rng.choice(len(m.weights), size=n, p=m.weights)
    x = m.centres[k] + m.spreads[k, None] * rng.standard_normal((n, 2))
    return np.mod(x, 2.0 * math.pi)


def _sphere_vmf(rng: np.random.Generator, n: int) -> np.ndarray:
    m = SPHERE_VMF
    k = rng.choice(len(m.weights), size=n, p=m.weights)
    mu, c = m.centres[k], m.spreads[k]
    u = rng.random(n)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * c)) / c
    phi = 2.0 * math.pi * rng.random(n)
    # An orthonormal basis (b1, b2) of the plane orthogonal to mu.
    helper = np.where(np.abs(mu[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    b1 = helper - np.sum(helper * mu, axis=1, keepdims=True) * mu
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    b2 = np.cross(mu, b1)
    radial = np.sqrt(np.clip(1.0 - w**2, 0.0, None))[:, None]
    x = w[:, None] * mu + radial * (np.cos(phi)[:, None] * b1 + np.sin(phi)[:, None] * b2)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@jax.jit
def _torus_gaussians_log_density(x: Array) -> Array:
    m = TORUS_GAUSSIANS
    diff = x[..., None, :, None] - m.centres[:, :, None] + 2.0 * math.pi * _WRAPS  # (..., K, 2, W)
    var = (m.spreads**2)[:, None, None]
    log_normal = -0.5 * diff**2 / var - 0.5 * jnp.log(2.0 * math.pi * var)
    per_coordinate = logsumexp(log_normal, axis=-1)  # the wrapped normal, (..., K, 2)
    return logsumexp(jnp.log(m.weights) + per_coordinate.sum(axis=-1), axis=-1).astype(x.dtype)


@jax.jit
def _sphere_vmf_log_density(x: Array) -> Array:
    m = SPHERE_VMF
    c = m.spreads
    log_norm = np.log(c) - np.log(2.0 * math.pi) - np.log1p(-np.exp(-2.0 * c))
    log_comp = log_norm + c * (x @ m.centres.T - 1.0)  # (..., K)
    return logsumexp(np.log(m.weights) + log_comp, axis=-1).astype(x.dtype)


class ManifoldToy(NamedTuple):
    """A toy distribution on a manifold: where it lives, how to sample it, its log density."""

    manifold: Manifold
    sample: Callable[[np.random.Generator, int], np.ndarray]
    log_density: Callable[[Array], Array]


MANIFOLD_TOYS: dict[str, ManifoldToy] = {
    "torus_gaussians": ManifoldToy(FlatTorus(2), _torus_gaussians, _torus_gaussians_log_density),
    "sphere_vmf": ManifoldToy(Sphere(2), _sphere_vmf, _sphere_vmf_log_density),
}
