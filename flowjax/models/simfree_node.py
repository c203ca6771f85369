"""A neural ODE on paired data in a learned embedding space: encoders f, g, decoder h, field v.

Simulation-free training of neural ODEs on paired data (Kim et al., 2024, section 4): an input
encoder z_0 = f(x), a label encoder z_1 = g(y), a velocity field v(z, t) on the embedding space
and a label decoder h, so that the prediction for x is y_hat = h(z(1)) where dz/dt = v(z, t),
z(0) = f(x) (solved by `flowjax.solvers.ode_predict` with any method). Training regresses v on
the velocity of a path from f(x) to g(y) (`flowjax.losses.simfree_node_loss`); an ordinary
neural ODE uses the same f, v and h, trained through the solver
(`flowjax.losses.backprop_node_loss`).

`embedding="identity"` gives flow matching in data space, the paper's failing baseline (its
section 3): f pads the flattened input with zeros to L = max(input size, target size), g pads
the target the same way and h reads the first target-size coordinates; none of them has
parameters.

Shapes: x (B, *event_shape); y (B, K) with K = num_classes (one-hot rows, or logits out of h)
or K = target_dim (regression); z (B, L) with L = latent_dim.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.mlp import ACTIVATIONS, MLP

EMBEDDINGS = ("learned", "identity")
ENCODERS = ("mlp", "cnn")


class _Dense(nnx.Module):
    """Linear layers of the given widths with the activation between them (not after the last)."""

    def __init__(self, widths: Sequence[int], activation: str, dtype, param_dtype, rngs):
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        self.activation = activation

    def __call__(self, h: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = act(h)
        return h


class _ConvEncoder(nnx.Module):
    """Images (B, H, W, C) -> (B, latent): 3x3 convolutions of stride 2, then a linear map."""

    def __init__(self, event_shape, channels, latent_dim, activation, dtype, param_dtype, rngs):
        if len(event_shape) != 3:
            raise ValueError(
                f"encoder='cnn' reads images of shape (H, W, C), got event shape {event_shape}."
            )
        height, width, in_channels = event_shape
        widths = [in_channels, *channels]
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        for _ in channels:
            height, width = -(-height // 2), -(-width // 2)
        self.out = nnx.Linear(
            height * width * widths[-1], latent_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        h = x
        for conv in self.convs:
            h = act(conv(h))
        return self.out(h.reshape(h.shape[0], -1))


class SimFreeNODE(nnx.Module):
    """f, g, h and v of the method; called as v: model(z, t) -> (B, L) (any flow solver's
    velocity), with `encode`, `encode_target`, `decode` and `predict` for the rest."""

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        num_classes: int | None = None,
        target_dim: int | None = None,
        embedding: str = "learned",
        latent_dim: int = 64,
        encoder: str = "mlp",
        encoder_hidden_dim: int = 256,
        encoder_layers: int = 2,
        cnn_channels: Sequence[int] = (32, 64),
        decoder_hidden_dim: int = 256,
        decoder_layers: int = 2,
        hidden_dim: int = 256,
        num_layers: int = 3,
        activation: str = "relu",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        """Args:
          event_shape: shape of one input x.
          num_classes: classes of a classification task (K = num_classes), or None.
          target_dim: entries K of a regression target (with num_classes None).
          embedding: "learned" (the method) or "identity" (flow matching in data space).
          latent_dim: L of the learned embedding.
          encoder: f as an "mlp" on the flattened input or a small "cnn" on images (H, W, C).
          encoder_hidden_dim, encoder_layers: width and number of hidden layers of the MLP f.
          cnn_channels: channels of the stride-2 convolutions of the CNN f.
          decoder_hidden_dim, decoder_layers: width and number of hidden layers of h.
          hidden_dim, num_layers: width and depth of the velocity MLP (`flowjax.models.MLP`).
          activation: nonlinearity of every network (a key of `flowjax.models.mlp.ACTIVATIONS`).
        """
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if (num_classes is None) == (target_dim is None):
            raise ValueError(
                "SimFreeNODE predicts either class logits (num_classes) or a regression target "
                f"(target_dim); give exactly one, got num_classes={num_classes}, "
                f"target_dim={target_dim}."
            )
        output_dim = num_classes if num_classes is not None else target_dim
        if output_dim < 1:
            raise ValueError(f"The target size must be >= 1, got {output_dim}.")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"Unknown embedding {embedding!r}; expected one of {EMBEDDINGS}.")
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; expected one of {ENCODERS}.")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}."
            )
        self.num_classes = num_classes
        self.output_dim = output_dim
        self.embedding = embedding
        self.encoder = encoder
        input_size = math.prod(self.event_shape)
        if embedding == "identity":
            latent_dim = max(input_size, output_dim)
        self.latent_dim = latent_dim
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if embedding == "learned":
            if encoder == "cnn":
                self.f = _ConvEncoder(
                    self.event_shape, tuple(cnn_channels), latent_dim, activation, **kw
                )
            else:
                widths = [input_size] + [encoder_hidden_dim] * encoder_layers + [latent_dim]
                self.f = _Dense(widths, activation, **kw)
            self.g = nnx.Linear(output_dim, latent_dim, **kw)
            widths = [latent_dim] + [decoder_hidden_dim] * decoder_layers + [output_dim]
            self.h = _Dense(widths, activation, **kw)
        self.v = MLP(
            (latent_dim,),
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            activation=activation,
            **kw,
        )

    def _pad(self, a: jax.Array) -> jax.Array:
        a = a.reshape(a.shape[0], -1)
        return jnp.pad(a, ((0, 0), (0, self.latent_dim - a.shape[1])))

    def encode(self, x: jax.Array) -> jax.Array:
        """z_0 = f(x): (B, *event_shape) -> (B, L)."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"SimFreeNODE expects inputs of shape (B, *{self.event_shape}), got {x.shape}."
            )
        if self.embedding == "identity":
            return self._pad(x)
        return self.f(x if self.encoder == "cnn" else x.reshape(x.shape[0], -1))

    def encode_target(self, y: jax.Array) -> jax.Array:
        """z_1 = g(y): (B, K) -> (B, L)."""
        if y.ndim != 2 or y.shape[1] != self.output_dim:
            raise ValueError(
                f"SimFreeNODE expects targets of shape (B, {self.output_dim}), got {y.shape}."
            )
        return self._pad(y) if self.embedding == "identity" else self.g(y)

    def decode(self, z: jax.Array) -> jax.Array:
        """y = h(z): (B, L) -> (B, K) (logits for classification)."""
        return z[:, : self.output_dim] if self.embedding == "identity" else self.h(z)

    def __call__(self, z: jax.Array, t: jax.Array) -> jax.Array:
        """The velocity v(z, t): z (B, L), t scalar or (B,) -> (B, L)."""
        return self.v(z, t)
