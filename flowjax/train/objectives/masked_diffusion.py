"""The trainer objective "masked_diffusion": masked diffusion language models (MDLM, MD4).

Simple and Effective Masked Diffusion Language Models (Sahoo et al., 2024) and Simplified and
Generalized Masked Diffusion for Discrete Data (Shi et al., 2024), in flowjax time (t = 0 every
token masked, t = 1 data; their time is 1 - t). Tokens are masked independently, token i being
unmasked at t with probability kappa_t (`flowjax.paths.MaskedDiffusionScheduler`: linear or
cosine). The network predicts the clean token of every position; its mask logit is removed and
unmasked positions are copied ("SUBS", MDLM eq. 5; the path's `posterior_logits`). The loss is
the continuous-time ELBO (MDLM eq. 10, MD4 eq. 5)

    -log p(x) <= int_0^1 kappa'_t / (1 - kappa_t) E[ sum_{i masked} -log p_theta(x^i | x_t) ] dt,

which is the generalized KL of discrete flow matching on a mask path (Flow Matching Guide,
eq. 7.26), with low-discrepancy training times (MDLM section 3.5). Samples are drawn by the
ancestral sampler (`flowjax.solvers.masked_diffusion_sample`, MDLM section 3.2.2), which skips
the network when no token changed for a network without time conditioning; float64 categorical
draws are a setting. Evaluation is the ELBO in nats, bits per token and its perplexity.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections

from flowjax import losses, paths, solvers
from flowjax.train import registry
from flowjax.train.objectives.base import (
    TEXT_EVALUATE_DEFAULTS,
    BatchFn,
    DataSpec,
    conditioning,
)
from flowjax.train.objectives.discrete import DiscreteFlowMatching


class MaskedDiffusion(DiscreteFlowMatching):
    """See the module docstring. The mask token is id V (the data vocabulary size); the network
    reads and predicts V + 1 tokens."""

    name = "masked_diffusion"
    default_model = "text_transformer"
    loss_name = "generalized_kl"
    posterior = "bayes"
    path_defaults = dict(
        schedule="linear",  # "linear" or "cosine" k(t) of kappa_t = eps_start + (1-eps) k(t)
        eps_start=1e-3,  # MDLM: 1e-3 and 0; MD4: 1e-4 and 1e-4
        eps_end=0.0,
    )
    loss_defaults = dict(
        time_distribution="low_discrepancy",  # or "uniform", "logit_normal"
        time_mean=-1.2,
        time_std=1.2,
        t_max=0.999,  # MDLM's times in [1e-3, 1] of its own time
        label_dropout=0.0,
    )
    sample_defaults = dict(
        step_size=1.0 / 1000.0,  # MDLM samples with 1,000 steps
        reuse_unchanged=True,  # skip the network when nothing changed (no time conditioning)
        categorical_dtype="float32",  # or "float64" (needs JAX_ENABLE_X64=1)
        guidance_scale=0.0,
    )
    evaluate_defaults = dict(elbo_time_samples=8, **TEXT_EVALUATE_DEFAULTS)
    choices = {
        "path.schedule": paths.MASKING_SCHEDULES,
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.categorical_dtype": ("float32", "float64"),
    }
    positive = (
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "evaluate.elbo_time_samples",
        "evaluate.judge_batch_size",
    )
    non_negative = ("path.eps_start", "path.eps_end", "sample.guidance_scale")
    unit_interval = ("loss.t_max", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        time_conditioned = config.model.get("time_conditioning", True)
        if config.sample.reuse_unchanged and time_conditioned:
            raise ValueError(
                "sample.reuse_unchanged=True reuses the network's output when no token changed, "
                "which is exact only for a network that does not read t: set "
                "model.time_conditioning=False (MDLM) or sample.reuse_unchanged=False."
            )

    def build_path(self) -> paths.MixtureDiscreteProbPath:
        return registry.build_masking_path(self.config.path, self.spec.vocab_size)

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        sc = self.config.sample
        intermediates = len(time_grid) > 2

        def sample(model, batch, key):
            x = solvers.masked_diffusion_sample(
                key,
                self._posterior(model, sc.guidance_scale),
                batch["x"],
                self.path,
                solver=self.sample_solver,
                time_grid=time_grid,
                reuse_unchanged=sc.reuse_unchanged,
                return_intermediates=intermediates,
                dtype=jnp.dtype(sc.categorical_dtype),
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        keys = ("step_size", "reuse_unchanged", "categorical_dtype", "guidance_scale")
        return {k: sc[k] for k in keys}
