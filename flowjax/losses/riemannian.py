"""The Riemannian conditional flow-matching loss.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.1 (the RCFM objective)
and Flow Matching Guide and Code (Lipman et al., 2024), section 5:

    L(theta) = E_{t, x_0 ~ p_0, x_1 ~ q} || v_theta(x_t, t) - dx_t ||_g^2,

with (x_t, dx_t) from the geodesic conditional path (`flowjax.paths.GeodesicProbPath`), whose
gradient equals that of the marginal Riemannian flow-matching loss. The model's output is
projected onto T_{x_t} M before the comparison, so any ambient network is a valid vector field;
for the metrics induced by the embedding (sphere, flat torus, Euclidean and their products) the
norm ||.||_g of a tangent vector is its Euclidean norm, so this is `flowjax.losses.cfm_loss`
(velocity prediction) of the projected model.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jaxtyping import Array, Float

from flowjax.losses.cfm import cfm_loss
from flowjax.paths.geodesic import GeodesicProbPath


def riemannian_cfm_loss(
    model_fn: Callable[..., jax.Array],
    path: GeodesicProbPath,
    x_0: Float[Array, "B *points d"],
    x_1: Float[Array, "B *points d"],
    t: Float[Array, "B"],
    **model_kwargs: Any,
) -> Float[Array, ""]:
    """The batch mean of ||proju_{x_t}(model(x_t, t)) - dx_t||^2 per ambient coordinate, a scalar.

    Args:
      model_fn: the network, called as model_fn(x_t, t, **model_kwargs) with t of shape (B,).
      path: the geodesic path on the data's manifold.
      x_0, x_1: source and data points, shape (B, ..., ambient_dim).
      t: times in [0, 1], shape (B,).
    """
    manifold = path.manifold

    def tangent_model(x: jax.Array, t: jax.Array, **kwargs: Any) -> jax.Array:
        return manifold.proju(x, model_fn(x, t, **kwargs))

    return cfm_loss(tangent_model, path, x_0, x_1, t, prediction="velocity", **model_kwargs)
