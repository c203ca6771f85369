"""Cartesian products M_1 x ... x M_k over consecutive slices of the last axis.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.2: a product of simple
geometries is again simple, its geodesics are products of the factors' geodesics (the
protein experiments fly on products of tori). With points x = (x^1, ..., x^k) stored as the
concatenation of the factors' coordinates,

    exp_x(u) = (exp_{x^i}(u^i))_i,   log_x(y) = (log_{x^i}(y^i))_i,
    d(x, y)^2 = sum_i d_i(x^i, y^i)^2,   base density = product of the factors' base densities,

and likewise for both projections. Factor i owns coordinates [o_i, o_i + n_i) of the last axis,
n_i = its `ambient_dim`, o_i the sum of the sizes before it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from flowjax.manifolds.base import Manifold, norm


@dataclasses.dataclass(frozen=True, init=False)
class Product(Manifold):
    """`Product(Sphere(2), FlatTorus(1), Euclidean(3))`: points of shape (..., 3 + 1 + 3)."""

    factors: tuple[Manifold, ...]

    def __init__(self, *factors: Manifold):
        if not factors or not all(isinstance(f, Manifold) for f in factors):
            raise ValueError(
                f"Product needs one or more Manifold factors, e.g. Product(Sphere(2), "
                f"FlatTorus(1)); got {factors!r}."
            )
        object.__setattr__(self, "factors", tuple(factors))

    @property
    def dim(self) -> int:
        return sum(f.dim for f in self.factors)

    @property
    def ambient_dim(self) -> int:
        return sum(f.ambient_dim for f in self.factors)

    def split(self, x: jax.Array) -> list[jax.Array]:
        """The factors' coordinates of x (..., ambient_dim), one array per factor."""
        self.check_coordinates(x=x)
        bounds, start = [], 0
        for factor in self.factors:
            bounds.append((start, start + factor.ambient_dim))
            start += factor.ambient_dim
        return [x[..., a:b] for a, b in bounds]

    def _per_factor(self, method: str, *arrays: jax.Array) -> list[jax.Array]:
        """[factor.method(its slices of `arrays`) for each factor]."""
        slices = zip(*(self.split(a) for a in arrays), strict=True)
        return [getattr(f, method)(*s) for f, s in zip(self.factors, slices, strict=True)]

    def _concat(self, method: str, *arrays: jax.Array) -> jax.Array:
        """A point or tangent vector of the product from the factors' ones."""
        return jnp.concatenate(self._per_factor(method, *arrays), axis=-1)

    def _root_sum_squares(self, method: str, *arrays: jax.Array) -> jax.Array:
        """A distance of the product from the factors' distances."""
        return norm(jnp.stack(self._per_factor(method, *arrays), axis=-1))

    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return self._concat("expmap", x, u)

    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        return self._concat("logmap", x, y)

    def projx(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return self._concat("projx", x)

    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, u=u)
        return self._concat("proju", x, u)

    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        self.check_coordinates(x=x, y=y)
        return self._root_sum_squares("dist", x, y)

    def distance_to_manifold(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return self._root_sum_squares("distance_to_manifold", x)

    def random_base(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        shape, dtype = self.base_args(shape, dtype)
        keys = jax.random.split(key, len(self.factors))
        return jnp.concatenate(
            [f.random_base(k, shape, dtype) for f, k in zip(self.factors, keys, strict=True)],
            axis=-1,
        )

    def base_log_prob(self, x: jax.Array) -> jax.Array:
        self.check_coordinates(x=x)
        return sum(self._per_factor("base_log_prob", x))
