"""Manifolds named by short strings, so that a config can say where its data live.

The geometries of Riemannian flow matching (Chen & Lipman, 2024, section 3.2: spheres, flat
tori, Euclidean factors and their products) written as in the mathematics:

    "S2"        Sphere(2), the 2-sphere in R^3
    "T2"        FlatTorus(2), angles in [0, 2 pi)^2
    "R3"        Euclidean(3)
    "S2xT1xR3"  Product(Sphere(2), FlatTorus(1), Euclidean(3)), coordinates in that order
"""

from __future__ import annotations

import re

from flowjax.manifolds.base import Manifold
from flowjax.manifolds.euclidean import Euclidean
from flowjax.manifolds.product import Product
from flowjax.manifolds.sphere import Sphere
from flowjax.manifolds.torus import FlatTorus

FACTORS: dict[str, type[Manifold]] = {"S": Sphere, "T": FlatTorus, "R": Euclidean}
_FACTOR = re.compile(r"([STR])(\d+)", re.ASCII)


def parse_manifold(name: str) -> Manifold:
    """The manifold named `name` ("S2", "T2", "R3" or a product such as "S2xT1xR3")."""
    factors = []
    for part in str(name).split("x"):
        match = _FACTOR.fullmatch(part.strip())
        if match is None or int(match.group(2)) < 1:
            raise ValueError(
                f"Cannot read the manifold {name!r}: expected factors S<d> (sphere), T<d> (flat "
                "torus) or R<d> (Euclidean) with d >= 1 joined by 'x', e.g. 'S2', 'T2' or "
                "'S2xT1xR3'."
            )
        factors.append(FACTORS[match.group(1)](int(match.group(2))))
    return factors[0] if len(factors) == 1 else Product(*factors)
