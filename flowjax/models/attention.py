"""Attention for the text transformers: scaled dot-product attention, rotary positions and the
key/value cache of autoregressive decoding.

- `attention`: softmax(Q K^T / sqrt(d)) V (Vaswani et al., 2017, eq. 1) through
  `jax.nn.dot_product_attention`, which lowers to the platform's fused kernel where one exists
  (cuDNN flash attention on GPU with `implementation="cudnn"`) and to XLA elsewhere (the CPU).
  Bidirectional, causal, or masked by key validity (a KV cache that is only partly filled).
  Arrays are (B, L, H, d): batch, positions, heads, head width.
- `apply_rotary`: rotary position embeddings (Su et al., 2021, "RoFormer", eq. 34): each pair of
  features (x_{2i}, x_{2i+1}) of a query or key at position m is rotated by the angle
  m * base^(-2i/d). Rotations keep norms, and q_m . k_n depends on m - n only.
- `KVCache` and `update_cache`: the keys and values of every layer for positions 0..L_max - 1,
  filled one decoding step at a time (`jax.lax.dynamic_update_slice`), with the number of
  valid positions, so that decoding a token costs one pass over one position.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def attention(
    q: Float[Array, "B Lq H d"],
    k: Float[Array, "B Lk H d"],
    v: Float[Array, "B Lk H d"],
    *,
    causal: bool = False,
    key_valid: Int[Array, ""] | None = None,
    query_offset: Int[Array, ""] | int = 0,
    implementation: str | None = None,
) -> Float[Array, "B Lq H d"]:
    """softmax(q k^T / sqrt(d)) v per head.

    Args:
      q, k, v: queries (B, Lq, H, d), keys and values (B, Lk, H, d).
      causal: query i (at absolute position query_offset + i) sees keys 0..query_offset + i.
      key_valid: the number of valid keys (a scalar): keys at positions >= key_valid are
        ignored (the unfilled end of a KV cache). None: all keys are valid.
      query_offset: the absolute position of the first query (decoding with a KV cache).
      implementation: passed to `jax.nn.dot_product_attention` (None: XLA, or "cudnn" for the
        fused GPU kernel).
    """
    same = q.ndim == 4 and k.shape == v.shape and q.shape[::2] == k.shape[::2]
    if not same or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention needs q (B, Lq, H, d) and k, v (B, Lk, H, d) with the same B, H, d; got "
            f"q {q.shape}, k {k.shape}, v {v.shape}."
        )
    if not causal and key_valid is None:
        return jax.nn.dot_product_attention(q, k, v, implementation=implementation)
    query_pos = query_offset + jnp.arange(q.shape[1])[:, None]
    key_pos = jnp.arange(k.shape[1])[None, :]
    allowed = jnp.ones((q.shape[1], k.shape[1]), bool)
    if causal:
        allowed = allowed & (key_pos <= query_pos)
    if key_valid is not None:
        allowed = allowed & (key_pos < key_valid)
    return jax.nn.dot_product_attention(
        q, k, v, mask=allowed[None, None], implementation=implementation
    )


def rotary_angles(
    positions: Int[Array, "*L"], head_dim: int, base: float = 10_000.0
) -> tuple[Float[Array, "*L half"], Float[Array, "*L half"]]:
    """(cos, sin) of the angles m * base^(-2i/d), i = 0..d/2 - 1, for integer positions m."""
    if head_dim % 2:
        raise ValueError(f"Rotary embeddings need an even head width, got {head_dim}.")
    inverse = base ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    angles = positions.astype(jnp.float32)[..., None] * inverse
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(
    x: Float[Array, "B L H d"], positions: Int[Array, "L"], base: float = 10_000.0
) -> Float[Array, "B L H d"]:
    """x with the features of position positions[l] rotated pairwise (RoFormer, eq. 34), in
    float32, returned in x's dtype."""
    cos, sin = rotary_angles(positions, x.shape[-1], base)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)


class KVCache(NamedTuple):
    """Keys and values of every layer, (num_layers, B, L_max, H, d) each, and the number of
    positions filled so far (an int32 scalar)."""

    keys: Float[Array, "N B Lmax H d"]
    values: Float[Array, "N B Lmax H d"]
    length: Int[Array, ""]

    @classmethod
    def empty(
        cls, num_layers: int, batch: int, max_length: int, num_heads: int, head_dim: int, dtype
    ) -> KVCache:
        shape = (num_layers, batch, max_length, num_heads, head_dim)
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((), jnp.int32))


def update_cache(
    cache_keys: Float[Array, "B Lmax H d"],
    cache_values: Float[Array, "B Lmax H d"],
    k: Float[Array, "B L H d"],
    v: Float[Array, "B L H d"],
    start: Int[Array, ""],
) -> tuple[Float[Array, "B Lmax H d"], Float[Array, "B Lmax H d"]]:
    """One layer's cache with the keys and values of positions start..start + L - 1 written."""
    index = (0, start, 0, 0)
    return (
        jax.lax.dynamic_update_slice(cache_keys, k.astype(cache_keys.dtype), index),
        jax.lax.dynamic_update_slice(cache_values, v.astype(cache_values.dtype), index),
    )
