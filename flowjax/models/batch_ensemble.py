"""BatchEnsemble layers: rank-1 fast weights on a shared weight.

Wen, Tran & Ba, 2020, "BatchEnsemble: an Efficient Ensemble of Neural Networks via Rank-1
Perturbation" (ICLR), eq. 1-2: member i's weight is W_i = W o (r_i s_i^T), so a dense layer is

    y_i = ((x_i o r_i) W) o s_i + b_i

and a convolution applies r_i to its input channels and s_i to its output channels. The batch
is laid out member-major: rows [i B, (i + 1) B) of an input of M B rows belong to member i
(training tiles the batch M times, prediction too). Fast weights start at +-1 with equal
probability (Uncertainty Baselines' random-sign initialiser); the biases are per member.

Shapes: dense x (M B, D_in) -> (M B, D_out); conv x (M B, H, W, C_in) -> (M B, H', W', C_out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _random_signs(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(jnp.float32)


def _per_member(x: jax.Array, members: int) -> jax.Array:
    if x.shape[0] % members:
        raise ValueError(
            f"A BatchEnsemble layer of {members} members needs a batch of M x B rows, got "
            f"{x.shape[0]} rows; tile the batch over the members first."
        )
    return x.reshape(members, x.shape[0] // members, *x.shape[1:])


class BatchEnsembleDense(nnx.Module):
    """A dense layer of `members` BatchEnsemble members (module docstring)."""

    def __init__(self, in_features: int, out_features: int, members: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.members = members
        self.layer = nnx.Linear(in_features, out_features, use_bias=False, dtype=dtype, rngs=rngs)
        self.r = nnx.Param(_random_signs(rngs.params(), (members, in_features)))
        self.s = nnx.Param(_random_signs(rngs.params(), (members, out_features)))
        self.bias = nnx.Param(jnp.zeros((members, out_features), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _per_member(x, self.members) * self.r[...][:, None].astype(x.dtype)
        y = self.layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:2], -1)
        y = y * self.s[...][:, None].astype(y.dtype) + self.bias[...][:, None].astype(y.dtype)
        return y.reshape(-1, y.shape[-1])


class BatchEnsembleConv(nnx.Module):
    """A 2-D convolution ("SAME" padding) of `members` BatchEnsemble members."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, members: int, *,
                 strides: int = 1, dtype=jnp.float32, rngs: nnx.Rngs):
        self.members = members
        self.layer = nnx.Conv(in_channels, out_channels, (kernel, kernel), strides=strides,
                              padding="SAME", use_bias=False, dtype=dtype, rngs=rngs)
        self.r = nnx.Param(_random_signs(rngs.params(), (members, in_channels)))
        self.s = nnx.Param(_random_signs(rngs.params(), (members, out_channels)))
        self.bias = nnx.Param(jnp.zeros((members, out_channels), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _per_member(x, self.members)
        x = x * self.r[...][:, None, None, None].astype(x.dtype)
        y = self.layer(x.reshape(-1, *x.shape[2:]))
        y = y.reshape(self.members, -1, *y.shape[1:])
        y = (y * self.s[...][:, None, None, None].astype(y.dtype)
             + self.bias[...][:, None, None, None].astype(y.dtype))
        return y.reshape(-1, *y.shape[2:])
