"""An MLP velocity field u_theta(x, t[, y]) for low-dimensional data.

The network of the Flow Matching Guide's 2D example (Lipman et al., 2024, section 1 and the
reference code's `examples/2d_flow_matching`): the input x (flattened event) is concatenated
with the time (the raw scalar t, or sinusoidal features of it) and, for a class-conditional
model, a learned label embedding, then passed through `num_layers` Linear+activation layers of
width `hidden_dim` and a final Linear back to the event size (or to `output_shape`, for inputs
that are features of the state, as in `flowjax.models.ManifoldMLP`).

Class conditioning reserves label `num_classes` as the "no label" token used by label dropout
and classifier-free guidance (`flowjax.guidance`).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.embeddings import batch_time, sinusoidal_embedding

ACTIVATIONS = {"swish": nnx.swish, "silu": nnx.silu, "gelu": nnx.gelu, "relu": nnx.relu}
TIME_EMBEDDINGS = ("raw", "sinusoidal")


class MLP(nnx.Module):
    """u(x, t, label=None): maps x of shape (B, *event_shape) and t (scalar or (B,)) to
    (B, *output_shape), by default output_shape = event_shape."""

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        output_shape: int | Sequence[int] | None = None,
        hidden_dim: int = 512,
        num_layers: int = 4,
        activation: str = "swish",
        time_embedding: str = "raw",
        time_embed_dim: int = 64,
        num_classes: int | None = None,
        class_embed_dim: int = 64,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.event_shape = _as_shape(event_shape)
        self.output_shape = self.event_shape if output_shape is None else _as_shape(output_shape)
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}.")
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"Unknown time embedding {time_embedding!r}; expected one of {TIME_EMBEDDINGS}."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        self.activation = activation
        self.time_embedding = time_embedding
        self.time_embed_dim = time_embed_dim
        self.num_classes = num_classes
        self.dtype = dtype
        event_size = math.prod(self.event_shape)
        in_dim = event_size + (1 if time_embedding == "raw" else time_embed_dim)
        if num_classes is not None:
            self.label_embed = nnx.Embed(num_classes + 1, class_embed_dim, rngs=rngs)
            in_dim += class_embed_dim
        widths = [in_dim] + [hidden_dim] * num_layers
        self.hidden = nnx.List(
            [
                nnx.Linear(a, b, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        self.out = nnx.Linear(
            hidden_dim, math.prod(self.output_shape), dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array, t: jax.Array, label: jax.Array | None = None) -> jax.Array:
        if x.shape[1:] != self.event_shape:
            raise ValueError(
                f"MLP expects x of shape (B, *{self.event_shape}), got {x.shape}."
            )
        batch = x.shape[0]
        t = batch_time(t, batch, x.dtype)
        if self.time_embedding == "raw":
            t_features = t[:, None]
        else:
            t_features = sinusoidal_embedding(t, self.time_embed_dim)
        features = [x.reshape(batch, -1), t_features]
        if self.num_classes is not None:
            if label is None:
                raise ValueError("This MLP is class-conditional: pass `label` of shape (B,).")
            features.append(self.label_embed(label).astype(x.dtype))
        elif label is not None:
            raise ValueError("This MLP is unconditional (num_classes=None) but got a `label`.")
        h = jnp.concatenate(features, axis=-1)
        act = ACTIVATIONS[self.activation]
        for layer in self.hidden:
            h = act(layer(h))
        return self.out(h).astype(x.dtype).reshape((batch, *self.output_shape))


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)
