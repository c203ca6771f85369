"""The trainer objective "setvae": hierarchical VAEs over sets of points.

Kim et al., 2021, "SetVAE: Learning Hierarchical Composition for Generative Modeling of
Set-Structured Data" (CVPR), section 3.3: the model (`flowjax.models.SetVAE`) reconstructs a
set through its posterior latents, and the loss of a set is

    L = CD(x_hat, x) + beta * sum_l KL(q(z_l | ...) || p(z_l | z_<l))

with CD the Chamfer distance summed over the points (the sum of squared distances of every
point to the nearest point of the other set, both ways: `flowjax.metrics.chamfer_distance`
times the set size) and beta warmed up linearly from 0 over `loss.kl_warmup_steps` updates
(the paper's 2,000 of 8,000 epochs), averaged over the batch. Sets of different sizes are padded
and carry a "mask" (B, N); the reconstruction has the input's points.

Sampling (`--mode=sample`) draws sets from the prior with the sizes of held-out sets (the
data's cardinalities, as the paper does); a longer time grid gives (held-out set, its
reconstruction) pairs. Evaluation (`--mode=evaluate`) reports on held-out sets the mean
Chamfer distance of reconstructions (the metric convention: means, not sums), the KL and the
loss per set, and compares `evaluate.num_samples` prior samples with as many held-out sets by
MMD, COV and 1-NNA under the Chamfer and Earth Mover's distances (`flowjax.metrics.
point_cloud_metrics`, PointFlow's protocol; sets of one size only). Its `log_likelihood`
returns the per-set columns (Chamfer, KL), not a log-likelihood.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, metrics
from flowjax.models.setvae import SetVAE
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

SCORE_COLUMNS = ("chamfer", "kl", "num_points")
"""The per-set columns of the objective's `log_likelihood`."""


def set_seeds(num: int, seed: int) -> np.ndarray:
    """One uint32 seed per set (num,), a pure function of `seed`."""
    return np.random.default_rng(seed).integers(0, 2**32, num, dtype=np.uint32)


class SetVAEObjective(Objective):
    """See the module docstring."""

    name = "setvae"
    default_model = "setvae"
    data_kind = "continuous"
    path_defaults: dict[str, Any] = {}
    loss_defaults = dict(
        kl_weight=1.0,  # beta
        kl_warmup_steps=0,  # beta grows linearly from 0 over this many updates (0: none)
    )
    sample_defaults: dict[str, Any] = {}
    evaluate_defaults = dict(
        # Distances of the sample metrics (MMD, COV, 1-NNA): "chamfer" and / or "emd".
        set_distances=("chamfer", "emd"),
        # Sets per block of the distance matrices (a block holds set_batch_size^2 x N^2
        # distances: 8 x 8 x 2048^2 floats are 1 GiB).
        set_batch_size=8,
    )
    positive = ("evaluate.set_batch_size",)
    non_negative = ("loss.kl_weight", "loss.kl_warmup_steps")
    compares_samples = True

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if registry.MODELS[config.model.name].cls is not SetVAE:
            raise ValueError(
                f"The objective {self.name!r} trains a SetVAE (model.name='setvae'), got "
                f"model.name={config.model.name!r}."
            )
        if len(spec.event_shape) != 2:
            raise ValueError(
                f"The objective {self.name!r} reads sets of points (N, D), e.g. "
                f"data.source='point_clouds'; the data have examples of shape {spec.event_shape}."
            )
        unknown = set(config.evaluate.set_distances) - set(metrics.DISTANCES)
        if unknown or not config.evaluate.set_distances:
            raise ValueError(
                f"evaluate.set_distances must name some of {metrics.DISTANCES}, got "
                f"{tuple(config.evaluate.set_distances)}."
            )

    def schedule_inputs(self, step: jax.Array) -> dict[str, jax.Array]:
        """beta of this update: kl_weight * min(1, step / kl_warmup_steps)."""
        c = self.config.loss
        ramp = jnp.minimum(1.0, step / c.kl_warmup_steps) if c.kl_warmup_steps else 1.0
        return {"kl_weight": jnp.asarray(c.kl_weight * ramp, jnp.float32)}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """One seed per set: its initial-set draws and latent noise."""
        return {**batch, "seed": jax.random.bits(key, batch["x"].shape[:1], jnp.uint32)}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        x, mask = batch["x"], batch["mask"]
        reconstruction, kl = model(x, mask, batch["seed"])
        size = jnp.sum(mask, axis=1).astype(jnp.float32)
        chamfer = metrics.chamfer_distance(reconstruction, x, mask, mask) * size
        return jnp.mean(chamfer + batch["kl_weight"] * kl)

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` held-out sets (their sizes are the samples' sizes) and a seed per set."""
        heldout = {**self.config.data.to_dict(), **self.config.evaluate.data.to_dict()}
        batch = next(data.build_dataset(heldout, global_batch_size=num, seed=seed))
        return {"x": np.asarray(batch["x"], np.float32), "mask": np.asarray(batch["mask"]),
                "seed": set_seeds(num, seed)}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        def draw(model, batch, key):
            del key  # each set's seed
            if len(time_grid) > 2:
                reconstruction, _ = model(batch["x"], batch["mask"], batch["seed"])
                return jnp.stack([batch["x"], reconstruction], axis=1)
            return model.generate(batch["mask"], batch["seed"])

        return draw

    def sample_settings(self) -> dict[str, Any]:
        return {"sampled_from": "the prior, with the sizes of held-out sets"}

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B, len(SCORE_COLUMNS)) per-set statistics (module docstring;
        not a log-likelihood)."""

        def scores(model, batch, key):
            x, mask = batch["x"], batch["mask"]
            seeds = jax.random.bits(key, x.shape[:1], jnp.uint32)
            reconstruction, kl = model(x, mask, seeds)
            chamfer = metrics.chamfer_distance(reconstruction, x, mask, mask)
            return jnp.stack([chamfer, kl, jnp.sum(mask, axis=1).astype(jnp.float32)], axis=1)

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        chamfer, kl, size = (np.asarray(c, np.float64) for c in log_p.T)
        beta = self.config.loss.kl_weight
        return {
            "reconstruction_chamfer": float(np.mean(chamfer)),
            "kl_per_set": float(np.mean(kl)),
            "loss_per_set": float(np.mean(chamfer * size + beta * kl)),
        }

    def sample_metrics(self, samples: np.ndarray, reference: dict[str, np.ndarray],
                       mesh) -> dict[str, float]:
        """MMD, COV and 1-NNA of prior samples against as many held-out sets (module
        docstring); none for sets of different sizes."""
        if not np.all(reference["mask"]):
            return {}
        n = min(len(samples), len(reference["x"]))
        return metrics.point_cloud_metrics(
            samples[:n], reference["x"][:n], distances=tuple(self.config.evaluate.set_distances),
            batch_size=self.config.evaluate.set_batch_size, mesh=mesh,
        )
