"""The training loss of the KL autoencoder of latent diffusion.

Rombach et al., 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", appendix
G: the encoder gives a diagonal Gaussian posterior q(z | x) = N(mu, diag(exp(logvar))); a
sample z = mu + exp(logvar / 2) eps is decoded to x_hat, and the loss is the reconstruction
error plus a small weight (1e-6 for the KL-f8 model) times KL(q(z | x) || N(0, I)), whose
closed form per latent dimension is

    KL = (mu^2 + exp(logvar) - 1 - logvar) / 2.

Per example, both terms are sums (over pixels, over latent dimensions) divided here by the
number of pixel values, so the loss is the mean pixel error plus kl_weight times the KL per
pixel value. The paper adds a perceptual (LPIPS) term and a patch discriminator for sharp
natural images; on small data (digits) the pixel loss alone is used here.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

RECONSTRUCTION_LOSSES = ("l1", "l2")


def gaussian_kl(mean: Float[Array, "B ..."], logvar: Float[Array, "B ..."]) -> Float[Array, "B"]:
    """KL(N(mean, exp(logvar)) || N(0, I)) of each example, summed over its dimensions (nats)."""
    kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
    return jnp.sum(kl.reshape(kl.shape[0], -1), axis=1)


def autoencoder_loss(
    autoencoder: Any,
    x: Float[Array, "B H W C"],
    eps: Float[Array, "B h w z"],
    *,
    reconstruction: str = "l1",
    kl_weight: float = 1e-6,
) -> tuple[Float[Array, "B"], dict[str, Float[Array, "B"]]]:
    """Per example: (error + kl_weight * KL) / (H W C), and its two terms (module docstring).

    Args:
      autoencoder: an object with `encode(x) -> (mean, logvar)` and `decode(z) -> x_hat`
        (`flowjax.models.AutoencoderKL`).
      x: images (B, H, W, C).
      eps: standard normal noise of the latent shape (B, h, w, z) for the posterior sample.
      reconstruction: "l1" (|x - x_hat|, the paper's) or "l2" ((x - x_hat)^2).
    """
    if reconstruction not in RECONSTRUCTION_LOSSES:
        raise ValueError(
            f"reconstruction must be one of {RECONSTRUCTION_LOSSES}, got {reconstruction!r}."
        )
    mean, logvar = autoencoder.encode(x)
    if eps.shape != mean.shape:
        raise ValueError(f"eps must have the latent shape {mean.shape}, got {eps.shape}.")
    x_hat = autoencoder.decode(mean + jnp.exp(0.5 * logvar) * eps)
    difference = x_hat.astype(jnp.float32) - x.astype(jnp.float32)
    error = jnp.abs(difference) if reconstruction == "l1" else jnp.square(difference)
    pixels = math.prod(x.shape[1:])
    error = jnp.sum(error.reshape(x.shape[0], -1), axis=1) / pixels
    kl = gaussian_kl(mean, logvar) / pixels
    return error + kl_weight * kl, {"reconstruction": error, "kl": kl}


__all__ = ["RECONSTRUCTION_LOSSES", "autoencoder_loss", "gaussian_kl"]
