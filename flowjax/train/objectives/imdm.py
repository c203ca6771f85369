"""The trainer objective "imdm": the Infinite Mask Diffusion Model.

Masked diffusion (`flowjax.train.objectives.masked_diffusion`: MDLM's linear schedule, the SUBS
posterior with the [MASK] logit at -inf, the continuous-time ELBO) where every masked position
also reads a continuous label eps (`flowjax.models.InfiniteMaskTransformer`: E[MASK] +
MLP(eps), the MLP's last layer zero so the model starts as the masked model it loads with
`train.init_from`). The backbone runs without time conditioning. Training draws fresh eps for
every example of every update (from a per-example seed, "noise_seed", so that micro-batches see
the noise of the global batch); the loss is the masked-diffusion ELBO given eps. Sampling
carries eps along (`flowjax.solvers.masked_diffusion_sample` with `draw_noise`: a masked
position keeps its eps or redraws it with the probabilities of the IMDM paper, or keeps it to
the end with `sample.fixed_noise`). Distillation (`loss.distill` "sdtt" / "redi") is the masked
objective's, with eps shared by teacher and student (SDTT) or regenerated from the coupling's
seed (ReDi). In both the teacher's random draws come from the same per-example seed as eps, so a
target is reproducible from the seed alone. A one-step student can only write consistent
sequences if its targets are a learnable function of eps; a teacher that ignores eps gives
targets that depend on eps only through the PRNG, which no network learns (experiments/imdm
measures both cases). The ELBO is evaluated with one eps per held-out sequence.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from flowjax import losses
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, conditioning
from flowjax.train.objectives.masked_diffusion import MaskedDiffusion

NOISE_STREAM = 0x45505331  # fold_in tag of the per-example seeds of eps


def per_example_noise(model: nnx.Module, seeds: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """eps (B, *shape, raw_dim) of the model's noise kind, example b drawn from key(seeds[b])."""
    return jax.vmap(lambda seed: model.draw_noise(jax.random.key(seed), shape))(seeds)


class InfiniteMaskDiffusion(MaskedDiffusion):
    """See the module docstring."""

    name = "imdm"
    default_model = "imdm_transformer"
    sample_defaults = dict(MaskedDiffusion.sample_defaults, fixed_noise=False)

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if config.model.name != "imdm_transformer":
            raise ValueError(
                f"The objective 'imdm' trains the infinite-mask transformer: set "
                f"model.name='imdm_transformer', got {config.model.name!r}."
            )

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        out = super().draw_step_noise(key, batch)
        if "noise_seed" not in out:  # ReDi couplings bring their own
            seed_key = jax.random.fold_in(key, NOISE_STREAM)
            out["noise_seed"] = jax.random.bits(seed_key, (batch["x"].shape[0],), jnp.uint32)
        if "sdtt_seed" in out:  # the teacher's draws from the seed of eps (module docstring)
            out["sdtt_seed"] = out["noise_seed"]
        return out

    def _noise(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        return {"eps": per_example_noise(model, batch["noise_seed"], batch["x_t"].shape[1:])}

    def _sampler_noise(self, model: nnx.Module) -> dict[str, Any]:
        return {"draw_noise": model.draw_noise, "fixed_noise": self.config.sample.fixed_noise}

    def sample_settings(self) -> dict[str, Any]:
        return {**super().sample_settings(), "fixed_noise": self.config.sample.fixed_noise}

    def log_likelihood(self) -> BatchFn:
        num_time_samples = self.config.evaluate.elbo_time_samples

        def elbo(model, batch, key):
            noise_key, elbo_key = jax.random.split(key)
            eps = model.draw_noise(noise_key, batch["x"].shape)
            return losses.discrete_elbo(
                elbo_key,
                self._posterior(model),
                self.path,
                batch["x"],
                num_time_samples=num_time_samples,
                eps=eps,
                **conditioning(batch),
            )

        return elbo
