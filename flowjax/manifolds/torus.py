"""The flat torus T^d = R^d / (2 pi Z)^d, points stored as angles in [0, 2 pi)^d.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.2 (simple geometries; the
flat torus is the setting of its protein backbone and high-dimensional torus experiments) and
Flow Matching Guide and Code (Lipman et al., 2024), section 5. The torus is flat: its tangent
space is R^d everywhere, geodesics are straight lines wrapped around, and per coordinate

    exp_x(u)  = (x + u) mod 2 pi
    log_x(y)  = the representative of y - x in [-pi, pi], = atan2(sin(y - x), cos(y - x))
    d(x, y)   = |log_x(y)|,    P_x(u) = u,    projx(x) = x mod 2 pi

Every finite angle represents a point, so nothing is ever "off" the torus: points outside
[0, 2 pi) are wrapped by `projx`. The atan2 form of the wrapped difference keeps full relative
precision for small differences (unlike (d + pi) mod 2 pi - pi); at d = pi exactly either
direction is a shortest geodesic. The base distribution is uniform, density (2 pi)^-d.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from flowjax.manifolds.base import Manifold, check_dimension, norm

TWO_PI = 2.0 * math.pi


@dataclasses.dataclass(frozen=True)
class FlatTorus(Manifold):
    """T^dim with angles in [0, 2 pi); `FlatTorus(2)` has points of shape (..., 2)."""

    dim: int = 2

    def __post_init__(self):
        check_dimension("FlatTorus", self.dim)

    @property
    def ambient_dim(self) -> int:
        return self.dim

    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return self.projx(x + u)

    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        d = y - x
        return jnp.arctan2(jnp.sin(d), jnp.cos(d))

    def projx(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        angle = jnp.mod(x, TWO_PI)
        # Rounding can map a tiny negative angle to 2 pi itself; that point is 0.
        return jnp.where(angle >= TWO_PI, angle - TWO_PI, angle)

    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return u

    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return norm(self.logmap(x, y))

    def distance_to_manifold(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return jnp.zeros(x.shape[:-1], x.dtype)

    def random_base(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Uniform angles in [0, 2 pi)^dim."""
        shape, dtype = self.base_args(shape, dtype)
        return self.projx(
            jax.random.uniform(key, (*shape, self.dim), dtype, minval=0.0, maxval=TWO_PI)
        )

    def base_log_prob(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return jnp.full(x.shape[:-1], -self.dim * math.log(TWO_PI), x.dtype)
