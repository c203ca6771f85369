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

Few-step distillation (`loss.distill`), for this objective and the infinite-mask model ("imdm"):

  "sdtt"  self-distillation through time (Deschenaux & Gulcehre, 2024; `flowjax.losses.
          sdtt_loss`): the model is a student with a frozen teacher (`flowjax.models.
          TeacherStudent`), both loaded from `train.init_from`; the student's one step matches
          the teacher's `sdtt_teacher_steps` ancestral steps of dt, under the reverse KL. Round r
          (updates r N .. (r + 1) N - 1, N = `sdtt_round_updates`) has dt = 2^r /
          `sdtt_start_steps`, until the student's step, teacher_steps * dt, reaches
          1 / `sdtt_min_steps`; when a round starts, the teacher becomes a copy of the student
          (of its raw weights, as the authors do).
  "redi"  rectified couplings (ReDi; IM-ReDi): the data are a teacher's samples x with the
          state x_start (at time t_start) they started from (source "couplings", written by
          `flowjax.train.couplings`). The student is trained on the path between the two, as
          rectified flows are: x_t is x_start with each of its masked positions revealed to its
          token in x with the forward probability from t_start to t, and the loss is the ELBO
          term with target x (for IMDM with the labels eps regenerated from the coupling's
          seed, the eps that led the teacher to x), so that one step from x_start can reach the
          teacher's many-step sample.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from flowjax import losses, models, paths, solvers
from flowjax.train import registry
from flowjax.train.objectives.base import (
    TEXT_EVALUATE_DEFAULTS,
    Batch,
    BatchFn,
    DataSpec,
    conditioning,
)
from flowjax.train.objectives.discrete import DiscreteFlowMatching

SDTT_STREAM = 0x53445454  # fold_in tag of the teacher draws' seeds


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
        distill="none",  # "none", "sdtt" or "redi" (module docstring)
        sdtt_start_steps=1024,  # the teacher's steps from 0 to 1 in the first round
        sdtt_min_steps=8,  # the student's steps from 0 to 1 in the last round
        sdtt_round_updates=10_000,  # updates per round (the step doubles after each)
        sdtt_teacher_steps=2,  # teacher steps per student step
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
        "loss.distill": ("none", "sdtt", "redi"),
    }
    positive = (
        "loss.sdtt_start_steps",
        "loss.sdtt_min_steps",
        "loss.sdtt_round_updates",
        "loss.sdtt_teacher_steps",
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
        distill, couplings = config.loss.distill, config.data.get("source") == "couplings"
        if (distill == "redi") != couplings:
            raise ValueError(
                "loss.distill='redi' trains on a teacher's couplings: set data.source='couplings' "
                "(written by flowjax.train.couplings.write_couplings) with it, and only with it; "
                f"got loss.distill={distill!r} and data.source={config.data.get('source')!r}."
            )
        if distill == "sdtt" and not config.train.init_from:
            raise ValueError(
                "loss.distill='sdtt' distils a trained model: set train.init_from to the work "
                "directory of the masked diffusion (or IMDM) run to distil."
            )

    def build_path(self) -> paths.MixtureDiscreteProbPath:
        return registry.build_masking_path(self.config.path, self.spec.vocab_size)

    # Distillation ------------------------------------------------------------------------------

    @property
    def distill(self) -> str:
        return self.config.loss.distill

    def model_fn(self, build):
        if self.distill != "sdtt":
            return build
        return lambda rngs: models.TeacherStudent(build, rngs)

    def sdtt_dt(self, round_index: jax.Array) -> jax.Array:
        """The teacher's step of round `round_index`: 2^r / start_steps, capped so that the
        student's step (teacher_steps dt) is at most 1 / min_steps."""
        c = self.config.loss
        largest = 1.0 / (c.sdtt_min_steps * c.sdtt_teacher_steps)
        return jnp.minimum(2.0 ** round_index.astype(jnp.float32) / c.sdtt_start_steps, largest)

    def begin_step(self, state):
        """SDTT: at the first update of a round, the teacher becomes a copy of the student."""
        if self.distill != "sdtt":
            return state
        round_index = state.step // self.config.loss.sdtt_round_updates
        new_round = (state.step % self.config.loss.sdtt_round_updates == 0) & (state.step > 0)
        student = nnx.to_pure_dict(state.params)["student"]
        model_state = jax.tree.map(lambda x: x, state.model_state)
        pure = nnx.to_pure_dict(model_state)
        pure["teacher_weights"] = jax.tree.map(
            lambda s, t: jnp.where(new_round, s, t), student, pure["teacher_weights"]
        )
        pure["round"] = round_index.astype(jnp.int32)
        nnx.replace_by_pure_dict(model_state, pure)
        return state.replace(model_state=model_state)

    def _noise(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """The network's extra inputs drawn per update: none (the infinite mask adds eps)."""
        return {}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        if self.distill == "redi":
            return self._with_dropout_seeds(key, self._coupling_path_sample(key, batch))
        out = super().draw_step_noise(key, batch)
        if self.distill == "sdtt":
            seed_key = jax.random.fold_in(key, SDTT_STREAM)
            out["sdtt_seed"] = jax.random.bits(seed_key, (batch["x"].shape[0],), jnp.uint32)
        return out

    def _coupling_path_sample(self, key: jax.Array, batch: Batch) -> Batch:
        """ReDi: x_t on the path from each coupling's start (x_start at t_start) to its sample x:
        t = t_start + (1 - t_start) tau with tau from the time distribution, and a position
        masked in x_start revealed (to its token in x) with probability
        (kappa_t - kappa_start) / (1 - kappa_start), the forward process given the start."""
        x_1, x_start, t_start = batch["x"], batch["x_start"], batch["t"]
        time_key, reveal_key = jax.random.split(key)
        t = t_start + (1.0 - t_start) * self._time(time_key, x_1.shape[0])
        kappa_start, kappa_t = self.path.scheduler(t_start).alpha_t, self.path.scheduler(t).alpha_t
        reveal = (kappa_t - kappa_start) / (1.0 - kappa_start)
        u = jax.random.uniform(reveal_key, x_1.shape)
        revealed = (x_start == self.path.source.mask_token) & (u < reveal[:, None])
        out = {"x": x_1, "x_t": jnp.where(revealed, x_1, x_start), "t": t}
        return out | {k: batch[k] for k in ("noise_seed", "label") if k in batch}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        cond = {**conditioning(batch), **self._noise(model, batch)}
        if self.distill != "sdtt":
            return losses.discrete_loss(
                self._posterior(model),
                self.path,
                batch["x"],
                batch["x_t"],
                batch["t"],
                loss=self.loss_name,
                **cond,
            )
        return losses.sdtt_loss(
            jax.vmap(jax.random.key)(batch["sdtt_seed"]),
            self._posterior(model.student),
            self._posterior(model.teacher()),
            self.path,
            batch["x_t"],
            batch["t"],
            self.sdtt_dt(model.round[...]),
            teacher_steps=self.config.loss.sdtt_teacher_steps,
            **cond,
        )

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
                **self._sampler_noise(model),
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def _sampler_noise(self, model: nnx.Module) -> dict[str, Any]:
        """The sampler's infinite-mask arguments: none for the masked model."""
        return {}

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        keys = ("step_size", "reuse_unchanged", "categorical_dtype", "guidance_scale")
        return {k: sc[k] for k in keys}
