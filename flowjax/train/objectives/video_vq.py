"""The trainer objective "video_vq": a 3D VQ video tokenizer (`flowjax.models.VQVAE3D`).

TATS 3D-VQGAN (Ge et al., ECCV 2022, section 3.1) without its adversarial parts, trained with
the VQ-VAE loss (van den Oord et al., 2017, eq. 3) per batch of videos x (B, T, H, W, C):

    L = w_rec * rec(x_hat, x) + w_cb * ||sg(z) - z_q||^2 + beta ||z - sg(z_q)||^2

with rec the mean absolute error (TATS's L1, weight 4) or the mean squared error
(`loss.reconstruction`), the codebook loss weighted by `loss.codebook_weight` (TATS has none:
its codebook follows exponential moving averages of the encoder outputs) and the commitment
loss with the model's beta (0.25). Left out: TATS's image and video discriminators (hinge GAN
losses and feature matching, from its step 10,000) and its LPIPS perceptual loss, so
reconstructions are blurrier than TATS's at the same size.

Sampling (`--mode=sample`) reconstructs held-out videos (`config.evaluate.data` over
`config.data`); a longer time grid gives (video, reconstruction) pairs (B, 2, T, H, W, C).
Evaluation (`--mode=evaluate`) reports on `evaluate.num_points` held-out videos the mean
squared and absolute errors in the data's [-1, 1] units, the mean per-video PSNR with the
pixels in [0, 1] (10 log10(1 / mse_01), mse_01 = mse / 4), and the codebook usage over all
their tokens: the perplexity exp(H(p)) of the codes' frequencies p and the number of codes used.
Its `log_likelihood` returns those per-video columns (not a log-likelihood).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data
from flowjax.models.vqvae3d import VQVAE3D
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

SCORE_COLUMNS = ("mse", "l1")
"""The first per-video columns of the objective's `log_likelihood`; the code counts follow."""


def psnr(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of videos in [-1, 1] with mean squared errors `mse`: 10 log10(4 / mse)."""
    return 10.0 * np.log10(4.0 / np.maximum(np.asarray(mse, np.float64), 1e-20))


def _reconstruction_error(kind: str, reconstruction: jax.Array, x: jax.Array) -> jax.Array:
    diff = reconstruction - x
    return jnp.mean(jnp.abs(diff) if kind == "l1" else jnp.square(diff))


class VideoVQObjective(Objective):
    """See the module docstring."""

    name = "video_vq"
    default_model = "vqvae3d"
    data_kind = "continuous"
    path_defaults: dict[str, Any] = {}
    loss_defaults = dict(
        reconstruction="l1",  # or "mse"
        reconstruction_weight=4.0,  # TATS's l1_weight
        codebook_weight=1.0,
    )
    sample_defaults: dict[str, Any] = {}
    evaluate_defaults: dict[str, Any] = {}
    choices = {"loss.reconstruction": ("l1", "mse")}
    non_negative = ("loss.reconstruction_weight", "loss.codebook_weight")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if registry.MODELS[config.model.name].cls is not VQVAE3D:
            raise ValueError(
                f"The objective {self.name!r} trains a VQVAE3D (model.name='vqvae3d'), got "
                f"model.name={config.model.name!r}."
            )
        if len(spec.event_shape) != 4:
            raise ValueError(
                f"The objective {self.name!r} reads videos (T, H, W, C), e.g. "
                f"data.source='moving_digits'; the data have examples of shape {spec.event_shape}."
            )
        if config.model.get("norm", "group") != "group":
            raise ValueError(
                "model.norm='batch' holds frozen running statistics (converted TATS checkpoints) "
                "and cannot be trained here; train with model.norm='group'."
            )

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """No randomness: the loss is a function of the videos."""
        return batch

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        c = self.config.loss
        reconstruction, aux = model(batch["x"])
        rec = _reconstruction_error(c.reconstruction, reconstruction, batch["x"])
        return (c.reconstruction_weight * rec + c.codebook_weight * aux["codebook_loss"]
                + aux["commitment_loss"])

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` held-out videos to reconstruct."""
        heldout = {**self.config.data.to_dict(), **self.config.evaluate.data.to_dict()}
        batch = next(data.build_dataset(heldout, global_batch_size=num, seed=seed))
        return {"x": np.asarray(batch["x"], np.float32)}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        def draw(model, batch, key):
            del key  # deterministic
            reconstruction, _ = model(batch["x"])
            if len(time_grid) > 2:
                return jnp.stack([batch["x"], reconstruction], axis=1)
            return reconstruction

        return draw

    def sample_settings(self) -> dict[str, Any]:
        return {"sampled_from": "reconstructions of held-out videos"}

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B, 2 + codebook_size): per-video MSE, L1 and code counts."""

        def scores(model, batch, key):
            del key
            x = batch["x"]
            reconstruction, aux = model(x)
            axes = tuple(range(1, x.ndim))
            mse = jnp.mean(jnp.square(reconstruction - x), axis=axes)
            l1 = jnp.mean(jnp.abs(reconstruction - x), axis=axes)
            counts = jax.nn.one_hot(aux["indices"].reshape(x.shape[0], -1),
                                    model.codebook_size).sum(axis=1)
            return jnp.concatenate([mse[:, None], l1[:, None], counts], axis=1)

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        mse, l1 = np.asarray(log_p[:, 0], np.float64), np.asarray(log_p[:, 1], np.float64)
        counts = np.asarray(log_p[:, 2:], np.float64).sum(axis=0)
        p = counts / counts.sum()
        nonzero = p[p > 0]
        return {
            "reconstruction_mse": float(np.mean(mse)),
            "reconstruction_l1": float(np.mean(l1)),
            "psnr": float(np.mean(psnr(mse))),
            "codebook_perplexity": float(np.exp(-np.sum(nonzero * np.log(nonzero)))),
            "codes_used": int(np.count_nonzero(counts)),
            "codebook_size": int(counts.size),
        }
