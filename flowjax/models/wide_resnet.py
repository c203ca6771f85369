"""Wide residual networks (the backbone of Uncertainty Baselines' CIFAR models).

Zagoruyko & Komodakis, 2016, "Wide Residual Networks" (BMVC), section 2 and table 1:
WRN-d-k is a 3x3 convolution to 16 channels, then three groups of n = (d - 4) / 6 pre-activation
basic blocks of widths 16 k, 32 k, 64 k (strides 1, 2, 2), each

    x + conv3x3(relu(bn(dropout(conv3x3(relu(bn(x)))))))

(a 1x1 convolution on the shortcut where the shape changes; dropout between the convolutions,
section 2.4), then batch norm, ReLU and global average pooling. WRN-28-10 (d = 28, k = 10) has
36.5M parameters at 10 classes. The network returns features (B, 64 k); the classifier head is
the method's (`flowjax.models.uncertainty`).

The layers come from a layer kit (plain, BatchEnsemble or spectrally normalised convolutions,
`flowjax.models.uncertainty.LayerKit`); dropout masks come from an explicit `jax.random` key
(None: no dropout), so MC dropout can keep them at prediction. Batch norm uses batch statistics
in training and the running averages otherwise.

Shapes: x (B, H, W, C) -> (B, 64 k).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class RunningStat(nnx.Variable):
    """Batch norm's running mean and variance (model state)."""


class BatchNorm(nnx.Module):
    """Batch normalisation over all axes but the last (Ioffe & Szegedy, 2015): batch
    statistics in training, whose running averages (momentum 0.9) are used otherwise. The
    averages are replaced by new Variables, not mutated in place, so the module trains in the
    trainer's functional step (which merges state created outside its trace)."""

    def __init__(self, channels: int, *, momentum: float = 0.9, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.mean = RunningStat(jnp.zeros((channels,), jnp.float32))
        self.var = RunningStat(jnp.ones((channels,), jnp.float32))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        axes = tuple(range(x.ndim - 1))
        if train:
            mean = jnp.mean(x.astype(jnp.float32), axis=axes)
            var = jnp.var(x.astype(jnp.float32), axis=axes)
            m = self.momentum
            self.mean = RunningStat(m * self.mean[...] + (1 - m) * jax.lax.stop_gradient(mean))
            self.var = RunningStat(m * self.var[...] + (1 - m) * jax.lax.stop_gradient(var))
        else:
            mean, var = self.mean[...], self.var[...]
        y = (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout: each entry kept with probability 1 - rate and scaled by 1 / (1 - rate);
    the identity when `key` is None or `rate` is 0."""
    if key is None or rate <= 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class WideBlock(nnx.Module):
    """One pre-activation basic block (module docstring)."""

    def __init__(self, kit, c_in: int, c_out: int, stride: int, dropout_rate: float, *,
                 rngs: nnx.Rngs):
        self.norm1 = BatchNorm(c_in)
        self.conv1 = kit.conv(c_in, c_out, 3, stride, rngs=rngs)
        self.norm2 = BatchNorm(c_out)
        self.conv2 = kit.conv(c_out, c_out, 3, 1, rngs=rngs)
        self.shortcut = (kit.conv(c_in, c_out, 1, stride, rngs=rngs)
                         if stride != 1 or c_in != c_out else None)
        self.dropout_rate = dropout_rate

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        h = jax.nn.relu(self.norm1(x, train))
        shortcut = x if self.shortcut is None else self.shortcut(h, train)
        h = self.conv1(h, train)
        h = jax.nn.relu(self.norm2(h, train))
        h = self.conv2(dropout(h, self.dropout_rate, key), train)
        return shortcut + h


class WideResNet(nnx.Module):
    """WRN-`depth`-`width` on images of `in_channels` channels (module docstring)."""

    def __init__(self, kit, in_channels: int, *, depth: int = 28, width: int = 10,
                 dropout_rate: float = 0.0, rngs: nnx.Rngs):
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"A Wide ResNet's depth must be 6 n + 4 (10, 16, 22, 28, ...), got "
                             f"model.depth={depth}.")
        n = (depth - 4) // 6
        self.stem = kit.conv(in_channels, 16, 3, 1, rngs=rngs)
        blocks, c_in = [], 16
        for group, stride in enumerate((1, 2, 2)):
            c_out = 16 * width * 2**group
            for i in range(n):
                blocks.append(WideBlock(kit, c_in, c_out, stride if i == 0 else 1, dropout_rate,
                                        rngs=rngs))
                c_in = c_out
        self.blocks = nnx.List(blocks)
        self.norm = BatchNorm(c_in)
        self.features = c_in

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        h = self.stem(x, train)
        for i, block in enumerate(self.blocks):
            h = block(h, train, None if key is None else jax.random.fold_in(key, i))
        h = jax.nn.relu(self.norm(h, train))
        return jnp.mean(h, axis=(1, 2))
