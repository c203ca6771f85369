"""Euclidean space R^d as a manifold, so that flat coordinates can join a product manifold.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.2: with the Euclidean
distance the geodesic conditional flow is the straight line x_t = x_0 + kappa_t (x_1 - x_0) of
Euclidean flow matching (Flow Matching Guide and Code, Lipman et al., 2024, eq. 4.60 with
alpha = kappa, sigma = 1 - kappa). exp_x(u) = x + u, log_x(y) = y - x, d(x, y) = |y - x|,
both projections are the identity. The base distribution is the standard normal N(0, I).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from flowjax.manifolds.base import Manifold, check_dimension, norm


@dataclasses.dataclass(frozen=True)
class Euclidean(Manifold):
    """R^dim; points of shape (..., dim)."""

    dim: int = 1

    def __post_init__(self):
        check_dimension("Euclidean", self.dim)

    @property
    def ambient_dim(self) -> int:
        return self.dim

    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return x + u

    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        return y - x

    def projx(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return x

    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return u

    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        return norm(y - x)

    def distance_to_manifold(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return jnp.zeros(x.shape[:-1], x.dtype)

    def random_base(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Standard normal samples."""
        shape, dtype = self.base_args(shape, dtype)
        return jax.random.normal(key, (*shape, self.dim), dtype)

    def base_log_prob(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return -0.5 * jnp.sum(x * x, axis=-1) - 0.5 * self.dim * math.log(2.0 * math.pi)
