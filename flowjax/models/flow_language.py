"""The network of flow language models (FLM) and their flow maps (FMLM).

One-step Language Modeling via Continuous Denoising (Lee et al., 2026; arXiv:2602.16813): the
text transformer (`flowjax.models.TextTransformer`, "DDiT") reading the (B, L, V) state of the
one-hot Gaussian path through its embedding matrix (x E, never a second (B, L, V) array),
conditioned on the argmax time alpha of `flowjax.paths.ArgmaxTime`. Two optional parts:

- `map_time`: a second time embedding for the end time t of a flow map X_{s,t} (FMLM); the
  conditioning is c = emb(s) + emb_end(t), and emb_end's last layer is zero-initialised, so a
  map network loaded from an FLM starts as that FLM. Called without t_end the network is the
  FLM (emb_end is skipped).
- `learned_weighting`: the loss weight w(alpha) of the objective e^{-w} L + w (an MLP of a
  sinusoidal embedding of the time, width `cond_dim` -> 128 -> 1, last layer zero so that w
  starts at 0; the authors' `LearnableLossWeighting`; for a map it reads the start time only,
  as theirs does). `loss_weight(t)` -> (B,).

Calls: `model(x, t, t_end=None, label=None, dropout_seed=None)` -> logits (B, L, V) float32
(for FMLM's stage-one map the raw output is the correction g_theta, not logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from flowjax.models.layers import TimeLabelEmbedding
from flowjax.models.transformer import TextTransformer

_zeros = nnx.initializers.zeros_init()


class LossWeighting(nnx.Module):
    """w(t) = Linear(GELU(Linear(MLP(sinusoidal(t))))): t (B,) or scalar -> (B,), zero at
    initialisation."""

    def __init__(self, cond_dim: int, hidden_dim: int = 128, *, rngs: nnx.Rngs):
        self.time = TimeLabelEmbedding(
            cond_dim, frequency_dim=256, num_classes=None, dtype=None, rngs=rngs
        )
        self.fc1 = nnx.Linear(cond_dim, hidden_dim, rngs=rngs)
        self.fc2 = nnx.Linear(hidden_dim, 1, kernel_init=_zeros, rngs=rngs)

    def __call__(self, t: Array, batch_size: int) -> Float[Array, "B"]:
        h = self.time(t, batch_size, None)
        return self.fc2(nnx.gelu(self.fc1(h), approximate=False))[:, 0]


class FlowLanguageTransformer(TextTransformer):
    """The text transformer of FLM / FMLM (module docstring); the other arguments are the text
    transformer's."""

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        vocab_size: int,
        map_time: bool = False,
        learned_weighting: bool = False,
        cond_dim: int = 128,
        rngs: nnx.Rngs,
        **settings,
    ):
        if settings.get("causal", False):
            raise ValueError("A flow language model is bidirectional: causal must be False.")
        super().__init__(
            event_shape, vocab_size=vocab_size, cond_dim=cond_dim, rngs=rngs, **settings
        )
        self.map_time = map_time
        self.learned_weighting = learned_weighting
        if map_time:
            self.end_time = TimeLabelEmbedding(
                cond_dim, frequency_dim=256, num_classes=None, dtype=self.dtype, rngs=rngs
            )
            self.end_time.fc2.kernel[...] = jnp.zeros_like(self.end_time.fc2.kernel[...])
        if learned_weighting:
            self.loss_weighting = LossWeighting(cond_dim, rngs=rngs)

    def loss_weight(self, t: Float[Array, "B"] | Float[Array, ""], batch_size: int) -> Array:
        """w(t) (B,) of the learned loss weighting."""
        if not self.learned_weighting:
            raise ValueError(
                "This network has no learned loss weighting: build it with "
                "learned_weighting=True (model.learned_weighting in a config)."
            )
        return self.loss_weighting(t, batch_size)

    def __call__(
        self,
        x: Int[Array, "B L"] | Float[Array, "B L V"],
        t: Float[Array, ""] | Float[Array, "B"] | None = None,
        t_end: Float[Array, ""] | Float[Array, "B"] | None = None,
        label: Int[Array, "B"] | None = None,
        dropout_seed: Int[Array, "B"] | None = None,
    ) -> Float[Array, "B L V"]:
        h = self._embed(x)
        if t_end is None:
            return self._forward(h, t, label, dropout_seed)
        if not self.map_time:
            raise ValueError(
                "This network reads one time; a flow map's end time t_end needs map_time=True "
                "(model.map_time in a config)."
            )
        end = self.end_time(t_end, h.shape[0], None)
        return self._forward(h, t, label, dropout_seed, extra_conditioning=end)
