"""The trainer objective "flm": flow language models over one-hot tokens and their flow maps.

One-step Language Modeling via Continuous Denoising (Lee et al., 2026; arXiv:2602.16813). Every
token follows the Euclidean path x_g = (1 - g) eps + g e_{x_1}, eps ~ N(0, I_V)
(`flowjax.paths.OneHotGaussianPath`); the network (`flowjax.models.FlowLanguageTransformer`,
"flm_transformer") reads the (B, L, V) state through its embedding matrix and is conditioned on
the argmax time alpha (`flowjax.paths.ArgmaxTime`: the rescaled probability that argmax x_g is
the right token, Gauss-Hermite quadrature tabulated both ways). As the authors: training times
alpha ~ U[0, 1) (low-discrepancy over the batch, their antithetic sampling), g = alpha^-1(alpha),
the noise eps drawn per example from a seed (so micro-batches see the global batch's noise and
the (B, L, V) array is made where it is used, sharded with its batch), the cross-entropy of the
x-prediction (`flowjax.losses.flm_loss`; e^{-w} L + w with model.learned_weighting), and the
Euler sampler in g on a grid uniform in alpha (`flowjax.solvers.flm_sample`; `sample.step_size`
in alpha), whose last step returns p_hat; samples are its argmax.

Distillation into the flow map (FMLM), `loss.distill`, each stage a run started from the
previous one with `train.init_from` (the model needs `model.map_time=True`):

  "flow_map"  stage one: a `TeacherStudent` whose frozen teacher is the FLM and whose student
              (the FLM's weights, its output layer zeroed, a zero-initialised end-time
              embedding) outputs the correction g_theta of X_{s,t}(x) = x + D v_s(x) + D^2/2
              g_theta; the semigroup loss `flowjax.losses.flow_map_loss` on pairs (s, t) of
              `losses.map_times` (the pair (0, 1) with probability `loss.boundary_probability`,
              1/64). Sampled by iterating the map (teacher and student: two calls per step).
  "one_call"  stage two: a student p_theta(x, s, t) (from the FLM's weights) whose Euler map
              regresses onto the frozen stage-one map (`flowjax.losses.one_call_loss`; the
              authors use boundary probability 1/128); one call per step.

Evaluation: the flow has no tractable token likelihood; `log_likelihood` reports minus the
held-out x-prediction cross-entropy summed over positions, averaged over
`evaluate.time_samples` stratified alphas (of the FLM; of the stage-one teacher for a
distilled run), not a bound. Sample quality is measured on the samples (generative perplexity,
unigram entropy; exactly on a synthetic language).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import losses, metrics, models, paths, solvers
from flowjax.train.objectives.base import (
    TEXT_EVALUATE_DEFAULTS,
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    conditioning,
)

NOISE_STREAM = 0x464C4D31  # fold_in tag of the per-example seeds of eps
DISTILL_STAGES = ("none", "flow_map", "one_call")
_OUTPUT_LAYER = ("student/head/", "student/modulation_out/")


def per_example_normal(seeds: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """eps (B, *shape) standard normal, example b drawn from key(seeds[b])."""
    return jax.vmap(lambda seed: jax.random.normal(jax.random.key(seed), shape))(seeds)


class FlowLanguageModel(Objective):
    """See the module docstring."""

    name = "flm"
    default_model = "flm_transformer"
    data_kind = "discrete"
    path_defaults = dict(
        table_points=10_000,  # knots of each table of alpha (uniform g / uniform alpha)
        quadrature_nodes=100,  # Gauss-Hermite nodes of alpha(g)
    )
    loss_defaults = dict(
        time_distribution="low_discrepancy",  # of alpha (and of the map's gap t - s)
        time_mean=-1.2,
        time_std=1.2,
        t_max=1.0,
        distill="none",  # "none" (FLM), "flow_map" (FMLM stage one), "one_call" (stage two)
        boundary_probability=1.0 / 64.0,  # of the pair (s, t) = (0, 1) when distilling
    )
    sample_defaults = dict(step_size=1.0 / 1024.0)  # in alpha: 1,024 steps (the authors' FLM)
    evaluate_defaults = dict(time_samples=8, **TEXT_EVALUATE_DEFAULTS)
    choices = {"loss.time_distribution": losses.TIME_DISTRIBUTIONS, "loss.distill": DISTILL_STAGES}
    positive = (
        "path.table_points",
        "path.quadrature_nodes",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "evaluate.time_samples",
        "evaluate.judge_batch_size",
    )
    unit_interval = ("loss.t_max", "loss.boundary_probability")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if config.model.name != "flm_transformer":
            raise ValueError(
                f"The objective 'flm' trains the flow language transformer: set "
                f"model.name='flm_transformer', got {config.model.name!r}."
            )
        if len(spec.event_shape) != 1:
            raise ValueError(f"FLM models token sequences (L,), got event shape {spec.event_shape}.")
        if self.distill != "none":
            if not config.model.map_time:
                raise ValueError(
                    f"loss.distill={self.distill!r} trains a flow map X_(s,t), which reads two "
                    "times: set model.map_time=True."
                )
            if not config.train.init_from:
                previous = "FLM" if self.distill == "flow_map" else "stage-one ('flow_map')"
                raise ValueError(
                    f"loss.distill={self.distill!r} distils a trained model: set train.init_from "
                    f"to the work directory of the {previous} run."
                )
        self.path = paths.OneHotGaussianPath.build(
            spec.vocab_size, config.path.table_points, config.path.quadrature_nodes
        )
        self.num_steps = max(round(1.0 / config.sample.step_size), 1)

    @property
    def distill(self) -> str:
        return self.config.loss.distill

    @property
    def time(self) -> paths.ArgmaxTime:
        return self.path.time

    # The model -----------------------------------------------------------------------------

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.spec.vocab_size}

    def model_fn(self, build):
        if self.distill == "none":
            return build
        second = self.distill == "one_call"
        return lambda rngs: models.TeacherStudent(build, rngs, second_teacher=second)

    def init_from_source(self, path: str, default: str) -> str | None:
        """Stage one: the student's output layer starts at zero (g_theta = 0: the map begins as
        the teacher's Euler step). Stage two, from a stage-one run: the student and the first
        teacher are its frozen FLM, the second teacher its student (the map)."""
        if self.distill == "flow_map" and path.startswith(_OUTPUT_LAYER):
            return None
        if self.distill == "one_call":
            if path.startswith(("student/", "teacher_weights/")):
                return "teacher_weights/" + default
            return default  # map_weights/... <- the stage-one student
        return default

    def _logits(self, network: nnx.Module, batch: Batch) -> Any:
        cond = conditioning(batch)
        return lambda x, *times: network(x, *times, **cond)

    def _probs(self, network: nnx.Module, batch: Batch) -> Any:
        logits = self._logits(network, batch)
        return lambda x, *times: jax.nn.softmax(logits(x, *times).astype(jnp.float32), axis=-1)

    def _weight_fn(self, network: nnx.Module) -> Any:
        if not self.config.model.learned_weighting:
            return None
        return lambda alpha: network.loss_weight(alpha, alpha.shape[0])

    # Training -------------------------------------------------------------------------------

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        time_key, noise_key = jax.random.split(key)
        size = batch["x"].shape[0]
        out = dict(batch)
        if self.distill == "none":
            out["alpha"] = self._time(time_key, size)
        else:
            out["alpha"], out["alpha_end"] = losses.map_times(
                time_key,
                size,
                self.config.loss.boundary_probability,
                self.config.loss.time_distribution,
            )
        seed_key = jax.random.fold_in(noise_key, NOISE_STREAM)
        out["noise_seed"] = jax.random.bits(seed_key, (size,), jnp.uint32)
        return self._with_dropout_seeds(key, out)

    def _x_g(self, batch: Batch) -> jax.Array:
        """x_g (B, L, V) of the batch's tokens at its times, eps from its seeds."""
        x_1 = batch["x"]
        eps = per_example_normal(batch["noise_seed"], (*x_1.shape[1:], self.spec.vocab_size))
        return self.path.sample(x_1, self.time.alpha_to_g(batch["alpha"]), eps)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        x_g = self._x_g(batch)
        if self.distill == "none":
            return losses.flm_loss(
                self._logits(model, batch),
                batch["x"],
                x_g,
                batch["alpha"],
                weight_fn=self._weight_fn(model),
            )
        labels = {k: v for k, v in batch.items() if k == "label"}  # teachers run without dropout
        teacher = self._probs(model.teacher(), labels)
        if self.distill == "flow_map":
            return losses.flow_map_loss(
                self._logits(model.student, batch),
                teacher,
                self.time,
                x_g,
                batch["alpha"],
                batch["alpha_end"],
                weight_fn=self._weight_fn(model.student),
            )
        return losses.one_call_loss(
            self._probs(model.student, batch),
            self._stage_one_map(model.teacher(), model.map_teacher(), labels),
            self.time,
            x_g,
            batch["alpha"],
            batch["alpha_end"],
        )

    def _stage_one_map(self, flm: nnx.Module, correction: nnx.Module, batch: Batch) -> Any:
        """(x, alpha_s, alpha_t, g_s, g_t) -> X_{s,t}(x) of FMLM's stage one."""
        probs = self._probs(flm, batch)
        logits = self._logits(correction, batch)
        return lambda x, a_s, a_t, g_s, g_t: solvers.taylor_map(
            x, probs(x, a_s), logits(x, a_s, a_t), g_s, g_t
        )

    # Sampling -------------------------------------------------------------------------------

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """Placeholder tokens "x" (the shape) and one noise seed per sample: the (B, L, V) noise
        is drawn from the seeds where the sampler runs (module docstring)."""
        rng = np.random.default_rng(seed)
        inputs = {
            "x": np.zeros((num, *self.spec.event_shape), np.int32),
            "noise_seed": rng.integers(2**32, size=num, dtype=np.uint32),
        }
        if self.spec.num_classes is not None:
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
        return inputs

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """Tokens (B, L); with a longer grid (argmax times) the argmax of the state at each of
        its times (B, T, L)."""

        def sample(model, batch, key):
            x_init = per_example_normal(
                batch["noise_seed"], (*batch["x"].shape[1:], self.spec.vocab_size)
            )
            cond = {k: v for k, v in batch.items() if k == "label"}
            if self.distill == "none":
                return solvers.flm_sample(
                    self._probs(model, cond), x_init, self.time, self.num_steps, times=time_grid
                )
            if self.distill == "flow_map":
                step = self._stage_one_map(model.teacher(), model.student, cond)
            else:
                probs = self._probs(model.student, cond)
                step = lambda x, a_s, a_t, g_s, g_t: solvers.euler_map(  # noqa: E731
                    x, probs(x, a_s, a_t), g_s, g_t
                )
            return solvers.flow_map_sample(step, x_init, self.time, self.num_steps, times=time_grid)

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sampler = {"none": "euler", "flow_map": "flow_map", "one_call": "one_call"}[self.distill]
        return {"step_size": self.config.sample.step_size, "steps": self.num_steps, "sampler": sampler}

    # Evaluation -----------------------------------------------------------------------------

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> minus the x-prediction cross-entropy of each sequence (summed
        over positions), averaged over stratified times (module docstring), (B,)."""
        num_times = self.config.evaluate.time_samples

        def score(model, batch, key):
            network = model if self.distill == "none" else model.teacher()
            x_1, size = batch["x"], batch["x"].shape[0]
            time_key, noise_key = jax.random.split(key)
            offsets = jax.random.uniform(time_key, (size,))

            def one_time(k):
                alpha = (k + offsets) / num_times
                seeds = jax.random.bits(jax.random.fold_in(noise_key, k), (size,), jnp.uint32)
                probe = {**batch, "alpha": alpha, "noise_seed": seeds}
                logits = self._logits(network, probe)(self._x_g(probe), alpha)
                log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
                return jnp.take_along_axis(log_p, x_1[..., None], axis=-1)[..., 0].sum(-1)

            return jnp.mean(jax.lax.map(one_time, jnp.arange(num_times)), axis=0)

        return score

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        nll = metrics.negative_log_likelihood(log_p)
        tokens = math.prod(self.spec.event_shape)
        return {
            "x_prediction_cross_entropy": nll["nll_nats"] / tokens,
            "x_prediction_cross_entropy_stderr": nll["nll_nats_stderr"] / tokens,
        }
