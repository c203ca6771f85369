"""Attention blocks over sets: MAB and ISAB of the Set Transformer, with masks for sets of
different sizes.

Lee et al., 2019, "Set Transformer: A Framework for Attention-based Permutation-Invariant Neural
Networks", eqs. 6-9:

    MAB(X, Y) = LN(H + rFF(H)),   H = LN(X + Multihead(X, Y, Y))
    ISAB_m(X) = MAB(X, H),        H = MAB(I, X)   (I: m learned inducing points)

so that an ISAB costs O(n m) for a set of n elements. The multi-head attention projects queries,
keys and values without biases and scales the logits by 1 / sqrt(width) (the whole width, as
the Set Transformer's and SetVAE's reference code do, not the width of a head); rFF is
Linear-ReLU-Linear of the block's width.

`slot_attention=True` is the variant SetVAE (Kim et al., 2021, section 3.2) uses where
inducing points read a set: the softmax is taken over the queries (the inducing points compete
for each element, as in slot attention, Locatello et al., 2020) and each query's output is the
weighted mean of the values it won. Masked keys get weight 0 in both variants (the reference
code lets a masked key add 1 / m to the normaliser of slot attention; here padding changes
nothing, so a padded set gives exactly the output of the unpadded one).

Shapes: x (B, N, dim_q) queries, y (B, M, dim_kv) keys and values; masks (B, N) / (B, M) bool,
True for the elements that exist; outputs at masked queries are 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float


class MultiheadAttentionBlock(nnx.Module):
    """MAB(x, y) (module docstring): (B, N, dim_q), (B, M, dim_kv) -> (B, N, dim_q) and the
    attention weights (B, heads, N, M)."""

    def __init__(
        self,
        dim_q: int,
        dim_kv: int,
        width: int,
        num_heads: int,
        *,
        slot_attention: bool = False,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if width % num_heads:
            raise ValueError(f"The attention width {width} is not divisible by {num_heads} heads.")
        self.width, self.num_heads, self.slot_attention = width, num_heads, slot_attention
        projection = dict(use_bias=False, dtype=dtype, rngs=rngs)
        self.query = nnx.Linear(dim_q, width, **projection)
        self.key = nnx.Linear(dim_kv, width, **projection)
        self.value = nnx.Linear(dim_kv, width, **projection)
        self.out = nnx.Linear(width, dim_q, **projection)
        self.norm1 = nnx.LayerNorm(dim_q, rngs=rngs)
        self.fc1 = nnx.Linear(dim_q, dim_q, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(dim_q, dim_q, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim_q, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B N Dq"],
        y: Float[Array, "B M Dk"],
        x_mask: Bool[Array, "B N"] | None = None,
        y_mask: Bool[Array, "B M"] | None = None,
    ) -> tuple[Float[Array, "B N Dq"], Float[Array, "B H N M"]]:
        b, n, m = x.shape[0], x.shape[1], y.shape[1]
        heads = self.num_heads

        def split(a, length):  # (B, length, width) -> (B, length, heads, width / heads)
            return a.reshape(b, length, heads, self.width // heads)

        q, k, v = split(self.query(x), n), split(self.key(y), m), split(self.value(y), m)
        logits = jnp.einsum("bnhd,bmhd->bhnm", q, k).astype(jnp.float32) / jnp.sqrt(self.width)
        keep = jnp.ones((b, m), bool) if y_mask is None else y_mask
        keep = keep[:, None, None, :]
        if self.slot_attention:  # softmax over the queries, then a weighted mean over the keys
            weights = jax.nn.softmax(logits, axis=2)
            weights = jnp.where(keep, weights, 0.0)
            weights = weights / (jnp.sum(weights, axis=3, keepdims=True) + 1e-5)
        else:
            weights = jax.nn.softmax(jnp.where(keep, logits, -jnp.inf), axis=3)
            weights = jnp.where(keep, weights, 0.0)  # a query over an empty set reads nothing
        attended = jnp.einsum("bhnm,bmhd->bnhd", weights.astype(v.dtype), v)
        h = self.norm1(x + self.out(attended.reshape(b, n, self.width)))
        out = self.norm2(h + self.fc2(nnx.relu(self.fc1(h))))
        if x_mask is not None:
            out = jnp.where(x_mask[..., None], out, 0.0)
        return out.astype(x.dtype), weights


class InducedSetAttentionBlock(nnx.Module):
    """ISAB_m(x) (module docstring): (B, N, dim) -> the new elements (B, N, dim) and the
    inducing points' summary H (B, m, dim); `slot_attention` applies to H = MAB(I, x)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_inducing: int,
        *,
        slot_attention: bool = False,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if num_inducing < 1:
            raise ValueError(f"An ISAB needs at least one inducing point, got {num_inducing}.")
        self.inducing = nnx.Param(nnx.initializers.xavier_uniform()(rngs.params(),
                                                                    (num_inducing, dim)))
        self.read = MultiheadAttentionBlock(dim, dim, dim, num_heads,
                                            slot_attention=slot_attention, dtype=dtype, rngs=rngs)
        self.write = MultiheadAttentionBlock(dim, dim, dim, num_heads, dtype=dtype, rngs=rngs)

    def summarise(
        self, x: Float[Array, "B N D"], x_mask: Bool[Array, "B N"] | None = None
    ) -> Float[Array, "B m D"]:
        """H = MAB(I, x): the inducing points after reading the set."""
        inducing = jnp.broadcast_to(self.inducing[...], (x.shape[0], *self.inducing.shape))
        return self.read(inducing.astype(x.dtype), x, None, x_mask)[0]

    def __call__(
        self, x: Float[Array, "B N D"], x_mask: Bool[Array, "B N"] | None = None
    ) -> tuple[Float[Array, "B N D"], Float[Array, "B m D"]]:
        h = self.summarise(x, x_mask)
        return self.write(x, h, x_mask, None)[0], h
