"""The trainer objective "autoencoder": the KL autoencoder of latent diffusion.

Rombach et al., 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", appendix
G (`flowjax.losses.autoencoder_loss`): images are encoded to a diagonal Gaussian posterior, a
posterior sample is decoded, and the loss is the pixel error (`loss.reconstruction`: "l1" or
"l2") plus `loss.kl_weight` times the KL to N(0, I), both per pixel value. The model is
`flowjax.models.AutoencoderKL` ("autoencoder_kl": diffusers' design, so that
`flowjax.train.export_autoencoder` writes it as a diffusers checkpoint for latent flow matching
and the latent perceptual loss).

Sampling (`--mode=sample`) reconstructs `sample.num_samples` held-out images (decoded posterior
means; `evaluate.data` over `data`); a longer time grid gives (input, reconstruction) pairs.
Evaluation (`--mode=evaluate`) reports on held-out images the reconstruction RMSE and PSNR
(pixels in [-1, 1]: PSNR = 10 log10(4 / MSE)), the mean absolute error, the KL per latent
dimension, and the standard deviation of the latent means with its inverse, the scaling factor
that gives the flow unit-variance latents (Rombach et al., section 4.3.2). Its
`log_likelihood` returns these per-example statistics as columns (not a log-likelihood).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, losses
from flowjax.models.autoencoder import autoencoder_for_images
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

SCORE_COLUMNS = ("squared_error", "absolute_error", "kl_per_latent_dim", "latent_sum",
                 "latent_square_sum")
"""The per-example columns of the objective's `log_likelihood`."""


class AutoencoderObjective(Objective):
    """See the module docstring."""

    name = "autoencoder"
    default_model = "autoencoder_kl"
    data_kind = "continuous"
    path_defaults: dict[str, Any] = {}
    loss_defaults = dict(
        reconstruction="l1",  # "l1" (the paper's) or "l2"
        kl_weight=1e-6,  # weight of KL(q(z | x) || N(0, I)) (the KL-f8 model's)
    )
    sample_defaults: dict[str, Any] = {}
    evaluate_defaults: dict[str, Any] = {}
    choices = {"loss.reconstruction": losses.RECONSTRUCTION_LOSSES}
    non_negative = ("loss.kl_weight",)

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if registry.MODELS[config.model.name].cls is not autoencoder_for_images:
            raise ValueError(
                f"The objective {self.name!r} trains a KL autoencoder "
                f"(model.name='autoencoder_kl'), got model.name={config.model.name!r}."
            )
        if len(spec.event_shape) != 3:
            raise ValueError(
                f"The autoencoder reads images (H, W, C); the data have examples of shape "
                f"{spec.event_shape}."
            )
        height, width, _ = spec.event_shape
        f = 2 ** (len(config.model.block_out_channels) - 1)
        self.latent_shape = (height // f, width // f, config.model.latent_channels)

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """eps ~ N(0, I) of the latent shape, for the posterior samples."""
        shape = (batch["x"].shape[0], *self.latent_shape)
        return {**batch, "eps": jax.random.normal(key, shape, jnp.float32)}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        c = self.config.loss
        per_example, _ = losses.autoencoder_loss(
            model, batch["x"], batch["eps"], reconstruction=c.reconstruction,
            kl_weight=c.kl_weight,
        )
        return jnp.mean(per_example)

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` held-out images (config.data with config.evaluate.data over it)."""
        heldout = {**self.config.data.to_dict(), **self.config.evaluate.data.to_dict()}
        batch = next(data.build_dataset(heldout, global_batch_size=num, seed=seed))
        return {"x": np.asarray(batch["x"], np.float32)}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        def reconstruct(model, batch, key):
            del key  # the posterior mean
            x = batch["x"]
            x_hat = model.decode(model.encode(x)[0])
            return jnp.stack([x, x_hat], axis=1) if len(time_grid) > 2 else x_hat

        return reconstruct

    def sample_settings(self) -> dict[str, Any]:
        return {"reconstruction_of": "the posterior mean"}

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B, len(SCORE_COLUMNS)) per-example statistics (module
        docstring; not a log-likelihood)."""

        def scores(model, batch, key):
            del key
            x = batch["x"]
            mean, logvar = model.encode(x)
            difference = (model.decode(mean) - x).reshape(x.shape[0], -1)
            latent = mean.reshape(x.shape[0], -1)
            return jnp.stack(
                [
                    jnp.mean(jnp.square(difference), axis=1),
                    jnp.mean(jnp.abs(difference), axis=1),
                    losses.gaussian_kl(mean, logvar) / latent.shape[1],
                    jnp.sum(latent, axis=1),
                    jnp.sum(jnp.square(latent), axis=1),
                ],
                axis=1,
            )

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        squared, absolute, kl, total, square_total = (np.asarray(c, np.float64) for c in log_p.T)
        n = len(squared) * math.prod(self.latent_shape)
        latent_mean = total.sum() / n
        latent_std = math.sqrt(max(square_total.sum() / n - latent_mean**2, 0.0))
        mse = float(np.mean(squared))
        return {
            "reconstruction_rmse": math.sqrt(mse),
            "reconstruction_psnr_db": 10.0 * math.log10(4.0 / mse) if mse > 0 else math.inf,
            "reconstruction_l1": float(np.mean(absolute)),
            "kl_per_latent_dim": float(np.mean(kl)),
            "latent_std": latent_std,
            "scaling_factor": 1.0 / latent_std if latent_std > 0 else math.inf,
        }
