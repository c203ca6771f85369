"""Time embeddings for flow networks.

Sinusoidal features of t (Vaswani et al., 2017, section 3.5; as used for diffusion time in
Ho et al., 2020): [cos(t * w_k), sin(t * w_k)] with frequencies w_k spaced geometrically from
1 to `max_period`. Time in flowjax lies in [0, 1], so it is scaled by `scale` (1000 by default,
the scale of the diffusion literature) before the features are taken.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def sinusoidal_embedding(
    t: jax.Array, dim: int, *, max_period: float = 10_000.0, scale: float = 1000.0
) -> jax.Array:
    """Features of shape (B, dim) for t of shape (B,)."""
    if dim % 2:
        raise ValueError(f"The sinusoidal embedding dimension must be even, got {dim}.")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = (scale * t.astype(jnp.float32))[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1).astype(t.dtype)


def batch_time(t: jax.Array, batch_size: int, dtype) -> jax.Array:
    """A scalar or (B,) time as a (B,) vector of `dtype`."""
    t = jnp.asarray(t, dtype=dtype)
    if t.ndim == 0:
        return jnp.full((batch_size,), t, dtype=dtype)
    if t.shape != (batch_size,):
        raise ValueError(f"t must be a scalar or of shape ({batch_size},), got {t.shape}.")
    return t
