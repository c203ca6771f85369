"""A small classifier backbone for 8x8 digits and feature vectors.

The small network of the offline Uncertainty Baselines experiment (Nado et al., 2021, on
scikit-learn's digits instead of CIFAR): for images (H, W, C), 3x3 convolutions with ReLU, the
first of stride 1 and the others of stride 2 (8x8 -> 8x8 -> 4x4 with two), flattened; then
dense ReLU layers of width `hidden_dim`; dropout (explicit `jax.random` key, see
`flowjax.models.wide_resnet.dropout`) after every hidden layer. Vectors (D,) skip the
convolutions. The layers come from a layer kit (`flowjax.models.uncertainty.LayerKit`).

Shapes: x (B, H, W, C) or (B, D) -> features (B, hidden_dim).
"""

from __future__ import annotations

import math

import jax
from flax import nnx

from flowjax.models.wide_resnet import dropout


class SmallClassifier(nnx.Module):
    """The network of the module docstring for inputs of `input_shape` (one example)."""

    def __init__(self, kit, input_shape: tuple[int, ...], *, conv_channels=(16, 32),
                 hidden_dim: int = 64, num_hidden: int = 1, dropout_rate: float = 0.0,
                 rngs: nnx.Rngs):
        convs, shape = [], tuple(input_shape)
        if len(shape) == 3:
            h, w, c = shape
            for i, channels in enumerate(conv_channels):
                stride = 1 if i == 0 else 2
                convs.append(kit.conv(c, channels, 3, stride, rngs=rngs))
                h, w, c = math.ceil(h / stride), math.ceil(w / stride), channels
            shape = (h, w, c)
        self.convs = nnx.List(convs)
        dims = [math.prod(shape)] + [hidden_dim] * num_hidden
        self.dense = nnx.List([kit.dense(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.dropout_rate, self.features = dropout_rate, dims[-1]

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        keys = [None if key is None else jax.random.fold_in(key, i)
                for i in range(len(self.convs) + len(self.dense))]
        for conv, k in zip(self.convs, keys):
            x = dropout(jax.nn.relu(conv(x, train)), self.dropout_rate, k)
        x = x.reshape(x.shape[0], -1)
        for layer, k in zip(self.dense, keys[len(self.convs):]):
            x = dropout(jax.nn.relu(layer(x, train)), self.dropout_rate, k)
        return x
