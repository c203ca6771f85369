"""Time embeddings for flow networks.

Sinusoidal features of t (Vaswani et al., 2017, section 3.5; as used for diffusion time in
Ho et al., 2020): [cos(t * w_k), sin(t * w_k)] with frequencies w_k spaced geometrically from
1 to `max_period`. Time in flowjax lies in [0, 1], so it is scaled by `scale` (1000 by default,
the scale of the diffusion literature) before the features are taken.

`control_strength(t)` weighs control-metadata embeddings (crop box, flip, original size) added
to the time embedding (Berrada et al., 2024, "On Improved Conditioning Mechanisms and
Pre-training Strategies for Diffusion Models", section 3): the control conditioning is brought
in gradually during denoising, 0 at the source (t = 0, pure noise) and 1 at the data (t = 1),
on the cosine ramp (1 - cos(pi t)) / 2 (flat at both ends; the paper gives the ramp's ends and
its cosine form, no code).
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


def control_strength(t: jax.Array) -> jax.Array:
    """(1 - cos(pi t)) / 2 per sample, t of shape (B,): 0 at t = 0 (noise), 1 at t = 1 (data)."""
    t = jnp.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"control_strength takes one time per sample (B,), got shape {t.shape}.")
    return 0.5 * (1.0 - jnp.cos(jnp.pi * jnp.clip(t, 0.0, 1.0)))
