"""A velocity network on a manifold: features of the point in, a tangent vector out.

Flow Matching on General Geometries (Chen & Lipman, 2024), section 3.1: the model v_theta(x, t)
must be a vector field on M, v_theta(x, t) in T_x M, so that the Riemannian flow-matching loss
||v_theta(x_t, t) - dx_t||_g^2 compares tangent vectors and its flow stays on M. Here an MLP
(`flowjax.models.MLP`) reads features phi(x) of the point and t, and its ambient output is
projected, v_theta(x, t) = proju_x(MLP(phi(x), t)) (Flow Matching Guide and Code, Lipman et
al., 2024, section 5: projecting an ambient network onto the tangent space).

Features: a function on the flat torus is a 2 pi-periodic function of the angles, so each
torus coordinate theta enters as the Fourier features [cos(k theta), sin(k theta)],
k = 1..num_frequencies, which makes the network periodic (continuous across the seam at
0 = 2 pi) by construction. Sphere and Euclidean coordinates enter as they are; a product
manifold concatenates the features of its factors.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.manifolds import FlatTorus, Manifold, Product, parse_manifold
from flowjax.models.mlp import MLP


def manifold_features(manifold: Manifold, x: jax.Array, num_frequencies: int) -> jax.Array:
    """phi(x) on the last axis: (..., ambient_dim) -> (..., num_features)."""
    if isinstance(manifold, Product):
        parts = manifold.split(x)
        return jnp.concatenate(
            [manifold_features(f, p, num_frequencies) for f, p in zip(manifold.factors, parts)],
            axis=-1,
        )
    if isinstance(manifold, FlatTorus):
        k = jnp.arange(1, num_frequencies + 1, dtype=x.dtype)
        angles = (x[..., :, None] * k).reshape(*x.shape[:-1], -1)  # (..., dim * K)
        return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    return x


class ManifoldMLP(nnx.Module):
    """v(x, t, label=None) = proju_x(MLP(phi(x), t, label)) for x of shape (B, *event_shape).

    Args:
      event_shape: the shape of one point, ending with the manifold's `ambient_dim`.
      manifold: a `flowjax.manifolds.Manifold` or its name for `parse_manifold` ("T2", "S2",
        "S2xT1xR3", ...).
      num_frequencies: Fourier frequencies per torus coordinate.
      **mlp_settings: the settings of `flowjax.models.MLP` (hidden_dim, num_layers, activation,
        time_embedding, time_embed_dim, num_classes, class_embed_dim, dtype, param_dtype).
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        manifold: Manifold | str,
        num_frequencies: int = 1,
        rngs: nnx.Rngs,
        **mlp_settings,
    ):
        self.manifold = parse_manifold(manifold) if isinstance(manifold, str) else manifold
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if not self.event_shape or self.event_shape[-1] != self.manifold.ambient_dim:
            raise ValueError(
                f"ManifoldMLP on {self.manifold} needs points of shape (..., "
                f"{self.manifold.ambient_dim}); got event_shape={self.event_shape}."
            )
        if num_frequencies < 1:
            raise ValueError(f"num_frequencies must be >= 1, got {num_frequencies}.")
        self.num_frequencies = num_frequencies
        features = jax.eval_shape(
            lambda x: manifold_features(self.manifold, x, num_frequencies),
            jax.ShapeDtypeStruct(self.event_shape, jnp.float32),
        )
        self.net = MLP(features.shape, output_shape=self.event_shape, rngs=rngs, **mlp_settings)

    def __call__(self, x: jax.Array, t: jax.Array, label: jax.Array | None = None) -> jax.Array:
        if x.shape[1:] != self.event_shape:
            raise ValueError(
                f"ManifoldMLP expects x of shape (B, *{self.event_shape}), got {x.shape}."
            )
        features = manifold_features(self.manifold, x, self.num_frequencies)
        return self.manifold.proju(x, self.net(features, t, label))
