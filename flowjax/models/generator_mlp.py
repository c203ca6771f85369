"""Networks for generator matching: per coordinate a velocity, a jump rate and jump-bin logits.

Generator Matching (Holderrieth et al., 2024): a model of a Markov generator predicts, per
coordinate, the parts of the generator it has: a velocity u_t (flow) and a jump measure
Q_t = lambda_t J_t, parameterised (as the paper's image models are) by a rate and a categorical
distribution over `num_bins` equal bins of a range (the UNet with b + 1 outputs per pixel).
The rate is predicted scaled by (1 - t): softplus(output) = (1 - t) lambda_t, which stays
bounded for the CondOT jump model whose rates grow like 1 / (1 - t) (`flowjax.paths.jump`).

`GeneratorMLP` is the network of the toys (an `flowjax.models.MLP` with 2 + num_bins outputs per
coordinate); `BinnedJumpHead` maps a feature map (B, H, W, F) of any image backbone to a rate
and bin logits per pixel and channel.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
from flax import nnx

from flowjax.models.mlp import MLP


class GeneratorOutput(NamedTuple):
    """A generator network's output for x of shape (B, *event); parts it lacks are None.

    velocity: (B, *event); scaled_rate: (1 - t) lambda_t >= 0, (B, *event);
    logits: (B, *event, num_bins) over the jump bins.
    """

    velocity: jax.Array | None
    scaled_rate: jax.Array | None
    logits: jax.Array | None


class GeneratorMLP(nnx.Module):
    """f(x, t, label=None) -> GeneratorOutput with a velocity and/or a binned jump per coordinate.

    Args:
      event_shape: the shape of one example.
      num_bins: b, the number of jump bins per coordinate.
      parts: "flow", "jump" or "flow+jump": which heads the output has.
      **mlp_settings: settings of `flowjax.models.MLP` (hidden_dim, num_layers, ...); t is a
        scalar or of shape (B,).
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        num_bins: int,
        parts: str = "flow+jump",
        rngs: nnx.Rngs,
        **mlp_settings,
    ):
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if parts not in ("flow", "jump", "flow+jump"):
            raise ValueError(f"parts must be 'flow', 'jump' or 'flow+jump', got {parts!r}.")
        if not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}.")
        self.parts = parts
        self.num_bins = num_bins
        self.net = MLP(
            self.event_shape,
            output_shape=(*self.event_shape, 2 + num_bins),
            rngs=rngs,
            **mlp_settings,
        )

    def __call__(self, x: jax.Array, t: jax.Array, label: jax.Array | None = None):
        out = self.net(x, t, label)
        flow, jump = "flow" in self.parts, "jump" in self.parts
        return GeneratorOutput(
            velocity=out[..., 0] if flow else None,
            scaled_rate=nnx.softplus(out[..., 1]) if jump else None,
            logits=out[..., 2:] if jump else None,
        )


class BinnedJumpHead(nnx.Module):
    """Per-pixel binned jump: features (B, H, W, F) -> GeneratorOutput with scaled_rate
    (B, H, W, C) and logits (B, H, W, C, num_bins), by a 1 x 1 convolution (a dense layer on the
    feature axis) with C (1 + num_bins) outputs; velocity is None."""

    def __init__(self, in_features: int, channels: int, num_bins: int, *, rngs: nnx.Rngs):
        if num_bins < 2 or channels < 1:
            raise ValueError(f"Need num_bins >= 2 and channels >= 1; got {num_bins}, {channels}.")
        self.channels, self.num_bins = channels, num_bins
        self.proj = nnx.Linear(in_features, channels * (1 + num_bins), rngs=rngs)

    def __call__(self, features: jax.Array) -> GeneratorOutput:
        if features.ndim != 4:
            raise ValueError(f"BinnedJumpHead expects features (B, H, W, F), got {features.shape}.")
        out = self.proj(features).reshape(*features.shape[:3], self.channels, 1 + self.num_bins)
        return GeneratorOutput(velocity=None, scaled_rate=nnx.softplus(out[..., 0]), logits=out[..., 1:])

