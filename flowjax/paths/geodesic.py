"""The geodesic conditional probability path of Riemannian flow matching.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.2, and Flow Matching
Guide and Code (Lipman et al., 2024), section 5 (geodesic conditional flows): on a manifold with
closed-form geodesics the conditional flow from a source point x_0 to a data point x_1 is

    x_t = psi_t(x_0 | x_1) = exp_{x_0}(kappa_t log_{x_0}(x_1)),

which moves along the shortest geodesic with d(x_0, x_t) = kappa_t d(x_0, x_1) (kappa_0 = 0,
kappa_1 = 1). Its conditional velocity dx_t = d/dt x_t lies in T_{x_t} M and is computed here by
forward-mode differentiation in t (one `jax.jvp`), so any scheduler and any manifold work with no
hand-derived formula. In Euclidean space this is the affine path with alpha = kappa,
sigma = 1 - kappa.

Time convention: t = 0 is the source, t = 1 the data. Inputs: x_0, x_1 of shape
(B, ..., ambient_dim) (the manifold's coordinates on the last axis), t of shape (B,).
Bad input: points whose values are known (outside `jax.jit`) are checked, and a point off the
manifold (e.g. a sphere point whose norm is not 1, beyond `flowjax.manifolds.DEFAULT_ATOL`) or
with non-finite coordinates raises a ValueError; points within the tolerance, and every point
under `jit`, are projected onto the manifold with `projx` (on the torus this wraps angles to
[0, 2 pi)).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax._checks import check_batch_time, check_same_shape, check_unit_interval
from flowjax.manifolds import Manifold, check_points
from flowjax.paths.affine import PathSample, expand_time
from flowjax.paths.schedulers import ConvexScheduler


@dataclasses.dataclass(frozen=True)
class GeodesicProbPath:
    """x_t = exp_{x_0}(kappa_t log_{x_0}(x_1)) on `manifold`, kappa_t from a convex scheduler."""

    scheduler: ConvexScheduler
    manifold: Manifold

    def __post_init__(self):
        if not isinstance(self.scheduler, ConvexScheduler):
            raise ValueError(
                "GeodesicProbPath needs a ConvexScheduler (kappa_t = alpha_t with kappa_0 = 0 and "
                "kappa_1 = 1), e.g. CondOTScheduler() or PolynomialScheduler(n); got "
                f"{self.scheduler!r}."
            )
        if not isinstance(self.manifold, Manifold):
            raise ValueError(
                "GeodesicProbPath needs a flowjax.manifolds.Manifold (Sphere(2), FlatTorus(2), "
                f"...); got {self.manifold!r}."
            )

    def sample(
        self,
        x_0: Float[Array, "B *points d"],
        x_1: Float[Array, "B *points d"],
        t: Float[Array, "B"],
    ) -> PathSample:
        """Draws x_t and dx_t on the geodesic from x_0 to x_1 for each (x_0, x_1, t).

        Args:
          x_0: source points, shape (B, ..., ambient_dim).
          x_1: data points, shape (B, ..., ambient_dim).
          t: times in [0, 1], shape (B,).

        Returns:
          PathSample with the projected endpoints, t, x_t on the manifold and dx_t in T_{x_t} M.
        """
        x_0, x_1, t = jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t)
        check_same_shape(x_0, x_1, "x_0", "x_1")
        check_batch_time(t, x_1, "x_1")
        check_unit_interval(t)
        check_points(self.manifold, x_0, "x_0")
        check_points(self.manifold, x_1, "x_1")
        x_0, x_1 = self.manifold.projx(x_0), self.manifold.projx(x_1)
        direction = self.manifold.logmap(x_0, x_1)

        def point_at(time: Array) -> Array:
            kappa = self.scheduler(expand_time(time, x_1)).alpha_t
            return self.manifold.expmap(x_0, kappa * direction)

        x_t, dx_t = jax.jvp(point_at, (t,), (jnp.ones_like(t),))
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)
