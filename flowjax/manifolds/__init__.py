"""Riemannian manifolds for Riemannian flow matching (Chen & Lipman, 2024).

`Euclidean`, `Sphere`, `FlatTorus` and their cartesian `Product`, each with `expmap`, `logmap`,
`projx`, `proju`, `dist` and a base distribution (`random_base`, `base_log_prob`); see
`flowjax.manifolds.base` for the conventions (points on the last axis, any batch shape) and
`parse_manifold` for their names in configs ("S2", "T2", "S2xT1xR3").
"""

from flowjax.manifolds.base import DEFAULT_ATOL, Manifold, check_points, norm
from flowjax.manifolds.euclidean import Euclidean
from flowjax.manifolds.names import parse_manifold
from flowjax.manifolds.product import Product
from flowjax.manifolds.sphere import Sphere
from flowjax.manifolds.torus import FlatTorus

__all__ = [
    "DEFAULT_ATOL",
    "Euclidean",
    "FlatTorus",
    "Manifold",
    "Product",
    "Sphere",
    "check_points",
    "norm",
    "parse_manifold",
]
