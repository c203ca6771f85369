"""The unit sphere S^d = {x in R^(d+1) : |x| = 1} with the great-circle metric.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.2 ("simple geometries":
closed-form geodesics, so the geodesic conditional flow is simulation-free) and Flow Matching
Guide and Code (Lipman et al., 2024), section 5 (Riemannian flow matching). For x, y in S^d and
u in T_x S^d = {u : u . x = 0}, with theta = |u| and phi = d(x, y):

    exp_x(u)  = cos(theta) x + sin(theta) u / theta
    log_x(y)  = phi w / |w|,   w = P_x(y - x) = P_x(y + x) = y - (x . y) x,   |w| = sin(phi)
    d(x, y)   = 2 atan2(|x - y|, |x + y|)                (= arccos(x . y))
    P_x(u)    = u - (x . u) x,    projx(x) = x / |x|

Float32 safety: the atan2 form of the distance is accurate at every angle (arccos loses half
the digits near 0 and pi); sin(theta)/theta is `jnp.sinc`, smooth through 0; w is formed from
y - x for x . y >= 0 and from y + x otherwise, the one of the two that float arithmetic computes
exactly (nearby and nearly antipodal points), so the direction of log_x(y) keeps its precision
even when |w| = sin(phi) is tiny. At exactly antipodal points every great circle is a
shortest geodesic and w vanishes: `logmap` then takes the one through the coordinate axis least
aligned with x, so exp_x(log_x(-x)) = -x still holds. `expmap` renormalises its result against
rounding. The base distribution is uniform, density 1 / vol(S^d) with
vol(S^d) = 2 pi^((d+1)/2) / Gamma((d+1)/2) (4 pi for S^2).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from flowjax.manifolds.base import Manifold, check_dimension, norm


@dataclasses.dataclass(frozen=True)
class Sphere(Manifold):
    """S^dim embedded in R^(dim + 1); `Sphere(2)` is the 2-sphere with points in R^3."""

    dim: int = 2

    def __post_init__(self):
        check_dimension("Sphere", self.dim)

    @property
    def ambient_dim(self) -> int:
        return self.dim + 1

    @property
    def log_volume(self) -> float:
        """log vol(S^dim) = log 2 + ((dim + 1) / 2) log pi - log Gamma((dim + 1) / 2)."""
        half = 0.5 * (self.dim + 1)
        return math.log(2.0) + half * math.log(math.pi) - math.lgamma(half)

    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        theta = norm(u, keepdims=True)
        return self.projx(jnp.cos(theta) * x + jnp.sinc(theta / jnp.pi) * u)

    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        nearly_antipodal = jnp.sum(x * y, axis=-1, keepdims=True) < 0
        w = self.proju(x, jnp.where(nearly_antipodal, y + x, y - x))
        w_norm = norm(w, keepdims=True)
        nonzero = w_norm > 0
        direction = jnp.where(
            nonzero, w / jnp.where(nonzero, w_norm, 1.0), self._least_aligned_direction(x)
        )
        return self.dist(x, y)[..., None] * direction

    def projx(self, x: jax.Array) -> jax.Array:
        """x / |x|; the zero vector, which has no direction, goes to the first coordinate axis."""
        self.check_coordinates(x=x)
        length = norm(x, keepdims=True)
        pole = jax.nn.one_hot(0, self.ambient_dim, dtype=x.dtype)
        return jnp.where(length > 0, x / jnp.maximum(length, jnp.finfo(x.dtype).tiny), pole)

    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return u - jnp.sum(x * u, axis=-1, keepdims=True) * x

    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        return 2.0 * jnp.arctan2(norm(x - y), norm(x + y))

    def distance_to_manifold(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return jnp.abs(norm(x) - 1.0)

    def random_base(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Uniform points: normalised standard normal vectors."""
        shape, dtype = self.base_args(shape, dtype)
        return self.projx(jax.random.normal(key, (*shape, self.ambient_dim), dtype))

    def base_log_prob(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return jnp.full(x.shape[:-1], -self.log_volume, x.dtype)

    def _least_aligned_direction(self, x: jax.Array) -> jax.Array:
        """A unit tangent vector at x: the coordinate axis with the smallest |x_k|, projected."""
        axis = jax.nn.one_hot(jnp.argmin(jnp.abs(x), axis=-1), self.ambient_dim, dtype=x.dtype)
        return self.projx(self.proju(x, axis))
