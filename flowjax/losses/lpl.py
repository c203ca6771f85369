"""The latent perceptual loss (LPL; Berrada et al., "Boosting Latent Diffusion with Perceptual
Objectives"): a latent flow's one-step clean-latent estimate z_hat and the true latent z are
compared in the autoencoder decoder's features, where the decoder sees what a pixel loss would.

For decoder feature maps phi_l (B, H_l, W_l, C_l), l = 0 (the middle block's output) to L - 1
(the up levels'):

1. Outlier mask of the target: per example and channel, the 2% and 98% quantiles q_lo, q_hi
   and the standard deviation s of phi_l(z) over the H_l W_l positions; a value is kept when it
   lies in [q_lo - 2 s, q_hi + 2 s]. The mask of kept values is then cleaned per channel by a
   morphological closing (dilation then erosion, square of side `closing`: holes narrower than
   it, such as an isolated outlier, are filled) and an opening (erosion then dilation, side
   `opening`: kept specks narrower than it inside outlier regions are removed), the sides
   scaled to the layer's resolution relative to the finest map (odd, at least 1); outside the
   map counts as neutral (0 for a dilation, 1 for an erosion). What is masked is the regions
   of outliers, the blobs that decoders of latent diffusion are known to produce.
2. Shared normalisation: both feature maps are divided by the target's norm over channels at
   each position, ||phi_l(z)[b, h, w, :]|| + eps, so the loss does not change when the target's
   features are rescaled per position.
3. Per layer, the masked mean squared error; the layers weighted 2^-min(l, 3) (normalised).
4. Only at high signal-to-noise: the loss is applied to the examples whose flow time
   t >= `t_min` (t = 1 is data). The authors apply it below DDPM timestep 200 of 1,000; for a
   linear-time path (x_t = t x_1 + (1 - t) x_0) the equivalent is t >= 0.8, the default.

No gradient flows into the target branch (`jax.lax.stop_gradient`); the gradient of z_hat flows
through the decoder (whose weights the loss does not train: pass them frozen). With any
parameterisation (epsilon, velocity, x), z_hat comes from the path's conversion to the clean
target (`flowjax.paths` conversions), so this loss takes z_hat directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax.paths.affine import AffineProbPath

FeatureFn = Callable[[Array], Sequence[Array]]
"""latent (B, h, w, z) -> decoder feature maps [(B, H_l, W_l, C_l)]."""

T_MIN = 0.8
"""The default flow-time gate: DDPM timesteps below 200 of 1,000 on a linear-time path."""


def _pool(mask: Float[Array, "B H W C"], side: int, reduce) -> Array:
    """Max (or min) over the side x side square around each position, outside ignored."""
    if side <= 1:
        return mask
    init = -jnp.inf if reduce is jax.lax.max else jnp.inf
    return jax.lax.reduce_window(mask, init, reduce, (1, side, side, 1), (1, 1, 1, 1), "SAME")


def dilate(mask: Array, side: int) -> Array:
    return _pool(mask, side, jax.lax.max)


def erode(mask: Array, side: int) -> Array:
    return _pool(mask, side, jax.lax.min)


def outlier_mask(
    target: Float[Array, "B H W C"],
    *,
    low: float = 0.02,
    high: float = 0.98,
    widen: float = 2.0,
    closing: int = 3,
    opening: int = 5,
) -> Float[Array, "B H W C"]:
    """1.0 where a target feature is kept, 0.0 at outliers (module docstring, step 1)."""
    q_lo = jnp.quantile(target, low, axis=(1, 2), keepdims=True)
    q_hi = jnp.quantile(target, high, axis=(1, 2), keepdims=True)
    spread = jnp.std(target, axis=(1, 2), keepdims=True)
    mask = ((target >= q_lo - widen * spread) & (target <= q_hi + widen * spread)).astype(
        target.dtype
    )
    mask = erode(dilate(mask, closing), closing)
    return dilate(erode(mask, opening), opening)


def _scaled_side(side: int, resolution: int, finest: int) -> int:
    """side * resolution / finest, rounded to an odd integer >= 1."""
    scaled = max(1, int(round(side * resolution / finest)))
    return scaled if scaled % 2 else max(1, scaled - 1)


def layer_weights(num_layers: int) -> Float[Array, "L"]:
    """2^-min(l, 3) for l = 0..L-1, normalised to sum to 1."""
    w = 2.0 ** -jnp.minimum(jnp.arange(num_layers), 3)
    return w / w.sum()


def feature_loss(
    predicted: Sequence[Float[Array, "B H W C"]],
    target: Sequence[Float[Array, "B H W C"]],
    *,
    closing: int = 3,
    opening: int = 5,
    eps: float = 1e-6,
) -> Float[Array, "B"]:
    """Steps 1-3 on given feature maps: the weighted masked MSE per example (B,)."""
    if len(predicted) != len(target) or not target:
        raise ValueError(
            f"Expected as many predicted as target feature maps (at least one), got "
            f"{len(predicted)} and {len(target)}."
        )
    finest = max(t.shape[1] for t in target)
    weights = layer_weights(len(target))
    total = 0.0
    for w, p, t in zip(weights, predicted, target):
        if p.shape != t.shape or t.ndim != 4:
            raise ValueError(f"Feature maps must be (B, H, W, C) and equal, got {p.shape}, {t.shape}.")
        t = jax.lax.stop_gradient(t)
        mask = jax.lax.stop_gradient(outlier_mask(
            t, closing=_scaled_side(closing, t.shape[1], finest),
            opening=_scaled_side(opening, t.shape[1], finest),
        ))
        scale = jnp.linalg.norm(t, axis=-1, keepdims=True) + eps
        error = mask * ((p - t) / scale) ** 2
        total = total + w * error.sum(axis=(1, 2, 3)) / jnp.maximum(mask.sum(axis=(1, 2, 3)), 1.0)
    return total


def clean_estimate(
    path: AffineProbPath,
    prediction: str,
    output: Float[Array, "B *event"],
    x_t: Float[Array, "B *event"],
    t: Float[Array, "B"],
) -> Float[Array, "B *event"]:
    """The one-step estimate of the data x_1 from a model's output (velocity, x_1-target or
    epsilon prediction) by the affine path's conversions."""
    conversions = {
        "velocity": path.velocity_to_target,
        "target": lambda out, x, s: out,
        "epsilon": path.epsilon_to_target,
    }
    if prediction not in conversions:
        raise ValueError(f"Unknown prediction {prediction!r}; expected one of {tuple(conversions)}.")
    return conversions[prediction](output, x_t, t)


def lpl_loss(
    features: FeatureFn,
    z_hat: Float[Array, "B h w z"],
    z: Float[Array, "B h w z"],
    t: Float[Array, "B"],
    *,
    t_min: float = T_MIN,
    closing: int = 3,
    opening: int = 5,
) -> Float[Array, "B"]:
    """The LPL of each example (B,): `feature_loss` of the decoder features of the estimate
    z_hat and of the true latent z (unscaled, as the decoder reads them), 0 where t < t_min."""
    if z_hat.shape != z.shape or t.shape != z.shape[:1]:
        raise ValueError(
            f"z_hat and z must share a shape (B, h, w, z) and t be (B,), got {z_hat.shape}, "
            f"{z.shape} and {t.shape}."
        )
    per_example = feature_loss(
        features(z_hat), features(jax.lax.stop_gradient(z)), closing=closing, opening=opening
    )
    return jnp.where(t >= t_min, per_example, 0.0)


__all__ = [
    "T_MIN",
    "clean_estimate",
    "dilate",
    "erode",
    "feature_loss",
    "layer_weights",
    "lpl_loss",
    "outlier_mask",
]
