"""A posterior network for discrete flows: token embeddings in, logits over the vocabulary out.

Flow Matching Guide and Code (Lipman et al., 2024), section 7 (discrete flow matching) and the
reference code's 2D discrete example: the model is a "probability denoiser" p_{1|t}(x_1^i | x_t),
one categorical distribution per token, from which the discrete paths build velocities
(`MixtureDiscreteProbPath.posterior_to_velocity`, ...). Each token of x_t is embedded
(a learned table of `token_embed_dim` features per vocabulary entry), the embeddings are
flattened and passed, with the time (and label) features, through `flowjax.models.MLP`, whose
output is read as logits of shape (B, *event_shape, vocab_size).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax.models.mlp import MLP


class DiscreteMLP(nnx.Module):
    """logits(x, t, label=None): tokens x (B, *event_shape) -> (B, *event_shape, vocab_size).

    Args:
      event_shape: the shape of one sequence of tokens, e.g. (2,) for 2D points.
      vocab_size: V, the number of token values (with the mask token, if any).
      token_embed_dim: features per token; None for `hidden_dim`.
      **mlp_settings: the settings of `flowjax.models.MLP` (hidden_dim, num_layers, activation,
        time_embedding, time_embed_dim, num_classes, class_embed_dim, dtype, param_dtype); t is a
        scalar or of shape (B,), as for the MLP.
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        vocab_size: int,
        token_embed_dim: int | None = None,
        hidden_dim: int = 128,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
        **mlp_settings,
    ):
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
        self.vocab_size = vocab_size
        embed_dim = hidden_dim if token_embed_dim is None else token_embed_dim
        self.token_embed = nnx.Embed(
            vocab_size, embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.net = MLP(
            math.prod(self.event_shape) * embed_dim,
            output_shape=(*self.event_shape, vocab_size),
            hidden_dim=hidden_dim,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            **mlp_settings,
        )

    def __call__(self, x: jax.Array, t: jax.Array, label: jax.Array | None = None) -> jax.Array:
        if x.shape[1:] != self.event_shape or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"DiscreteMLP expects integer tokens of shape (B, *{self.event_shape}), got "
                f"{x.dtype} of shape {x.shape}."
            )
        features = self.token_embed(x).reshape(x.shape[0], -1)
        return self.net(features, t, label)
