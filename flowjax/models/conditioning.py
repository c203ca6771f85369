"""Disentangled conditioning of image flows: control metadata and text tokens.

Berrada et al., 2024, "On Improved Conditioning Mechanisms and Pre-training Strategies for
Diffusion Models", section 3. Control metadata are the facts of how a training image was made
(horizontal flip, crop box, original size), as opposed to semantic conditions (a class, a
caption). Added to the same adaLN vector as the class, they leak into what is drawn; the paper
embeds them on their own and adds them to the time embedding with a strength that rises over
denoising time (`flowjax.models.embeddings.control_strength`), while the semantic condition
enters through attention (`flowjax.models.DiT` with conditioning="attention").

- `ControlEmbedding`: control metadata (B, K), each value in about [0, 1] (a flip flag, a crop
  coordinate divided by the image side, ...), to (B, dim): sinusoidal features of each value
  (as SDXL embeds its size and crop conditions), concatenated, then a two-layer MLP. A row of
  NaN is the null control (`NULL_CONTROL`): no metadata, embedded as zeros, which is what
  control dropout trains for and the unconditional branch of control guidance reads.
- `noisy_replicate_padding`: text-token sequences padded to a fixed length by repeating the
  valid tokens (token j of a sequence of n valid ones reads token j mod n) plus Gaussian noise
  of standard deviation `noise_std` on the repeated copies, instead of padding tokens the model
  would learn to read (section 3, "noisy replicate padding"). The null caption
  (`null_context`, zeros) is what context dropout trains for and guidance's unconditional
  branch reads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from flowjax.models.embeddings import sinusoidal_embedding

NULL_CONTROL = float("nan")
"""The value of every entry of a control row that carries no metadata."""

NULL_CONTEXT = 0.0
"""The value of every token entry of a caption that says nothing (context dropout, the
unconditional branch of guidance): the DiT then reads only its projection's bias."""


def null_control(batch_size: int, control_dim: int) -> Float[Array, "B K"]:
    """A batch of null control rows (NaN)."""
    return jnp.full((batch_size, control_dim), NULL_CONTROL, jnp.float32)


class ControlEmbedding(nnx.Module):
    """control (B, K) -> (B, dim); a NaN row gives zeros (module docstring)."""

    def __init__(self, control_dim: int, dim: int, *, frequency_dim: int = 64, dtype=None,
                 rngs: nnx.Rngs):
        if control_dim < 1:
            raise ValueError(f"ControlEmbedding needs control_dim >= 1, got {control_dim}.")
        self.control_dim = control_dim
        self.frequency_dim = frequency_dim
        self.fc1 = nnx.Linear(control_dim * frequency_dim, dim, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, control: Float[Array, "B K"]) -> Float[Array, "B dim"]:
        if control.ndim != 2 or control.shape[1] != self.control_dim:
            raise ValueError(
                f"control must have shape (B, {self.control_dim}) (one row of metadata per "
                f"example, NaN for none), got {tuple(control.shape)}."
            )
        present = ~jnp.any(jnp.isnan(control), axis=1)
        values = jnp.where(present[:, None], control, 0.0).astype(jnp.float32)
        b, k = values.shape
        features = sinusoidal_embedding(values.reshape(b * k), self.frequency_dim)
        h = self.fc2(nnx.silu(self.fc1(features.reshape(b, k * self.frequency_dim))))
        return jnp.where(present[:, None], h, 0.0)


def null_context(context: Float[Array, "B M D"]) -> Float[Array, "B M D"]:
    """The null captions of the shape of `context`."""
    return jnp.full_like(context, NULL_CONTEXT)


def noisy_replicate_padding(
    key: jax.Array,
    tokens: Float[Array, "B M D"],
    lengths: Int[Array, "B"],
    noise_std: float,
) -> Float[Array, "B M D"]:
    """Positions j >= lengths[b] of tokens[b] replaced by tokens[b, j mod lengths[b]] + noise."""
    if tokens.ndim != 3 or lengths.shape != tokens.shape[:1]:
        raise ValueError(
            f"Expected tokens (B, M, D) and lengths (B,), got {tuple(tokens.shape)} and "
            f"{tuple(lengths.shape)}."
        )
    if not noise_std >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}.")
    m = tokens.shape[1]
    n = jnp.clip(lengths, 1, m)[:, None]
    positions = jnp.arange(m)[None, :]
    source = positions % n
    replicated = jnp.take_along_axis(tokens, source[:, :, None], axis=1)
    noise = noise_std * jax.random.normal(key, tokens.shape, tokens.dtype)
    padding = (positions >= n)[:, :, None]
    return jnp.where(padding, replicated + noise, tokens)


__all__ = [
    "ControlEmbedding",
    "NULL_CONTEXT",
    "NULL_CONTROL",
    "noisy_replicate_padding",
    "null_context",
    "null_control",
]
