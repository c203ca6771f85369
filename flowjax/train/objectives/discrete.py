"""The trainer objective "discrete_flow_matching": discrete flow matching on token data.

Flow Matching Guide and Code (Lipman et al., 2024), section 7, and Flow Matching with General
Discrete Paths: a Kinetic-Optimal Perspective (Shaul et al., 2024): factorized mixture paths
(eq. 7.8 of the Guide) with a mask or uniform source and a polynomial or kinetic-optimal
scheduler, or metric-induced paths p_t(x | x_1) = softmax(-beta_t d(x, x_1)) (Shaul et al.,
eq. 21); the generalized KL (an ELBO, Guide eq. 7.26) or cross-entropy loss; the CTMC Euler
sampler (`flowjax.solvers.discrete_sample`) and the ELBO in bits per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, guidance, losses, metrics, paths, solvers
from flowjax.train import registry
from flowjax.train.objectives.base import (
    TEXT_EVALUATE_DEFAULTS,
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    conditioning,
    drop_labels,
)


class DiscreteFlowMatching(Objective):
    """Discrete flow matching on token data (`flowjax.paths.discrete`, `.metric_induced`).

    path.kind="mixture": p_t(x^i | x_1) = (1 - kappa_t) p_0 + kappa_t delta_{x_1^i} with
    path.source "mask" (an extra token, id = the data vocabulary size) or "uniform", and
    path.scheduler "polynomial" (kappa_t = t^n) or "kinetic_optimal" (Shaul et al., 2024).
    path.kind="metric": p_t(x | x_1) = softmax(-beta_t d(x, x_1)), uniform source, with
    d(x, y) = (distance_scale |x - y|)^distance_power (or, with path.embeddings, the distance
    between token embeddings) and beta_t = beta_c (t/(1 - t))^beta_a.
    path.posterior="bayes": the posterior logits are the network's plus log p_t(x_t^i | x_1^i)
    (`posterior_logits` of the path: the exact dependence on the current token; for a mask
    source, unmasked tokens are final); "network": the network's logits as they are.
    Trained with the generalized KL (an ELBO) or the cross-entropy, sampled with
    `flowjax.solvers.discrete_sample` and evaluated by the ELBO in bits per token
    (`flowjax.losses.discrete_elbo`).
    """

    name = "discrete_flow_matching"
    default_model = "discrete_mlp"
    data_kind = "discrete"
    path_defaults = dict(
        kind="mixture",  # "mixture" or "metric"
        source="mask",  # mixture: "mask" (one extra token) or "uniform"; metric: "uniform"
        scheduler="polynomial",  # mixture: "polynomial" (kappa = t^n) or "kinetic_optimal"
        polynomial_n=1.0,
        distance_scale=1.0,  # metric: d(x, y) = (distance_scale |x - y|)^distance_power
        distance_power=1.0,
        # metric: a .npy of token embeddings (V, d): d(x, y) = (scale ||e_x - e_y||)^power
        # instead of the distance between token ids ("": token ids)
        embeddings="",
        beta_c=3.0,  # metric: beta_t = beta_c (t / (1 - t))^beta_a
        beta_a=0.9,
        posterior="bayes",  # or "network" (see the class docstring)
    )
    loss_defaults = dict(
        name="generalized_kl",  # or "cross_entropy"
        time_distribution="uniform",  # or "logit_normal"
        time_mean=-1.2,
        time_std=1.2,
        t_max=0.999,  # times are drawn in [0, t_max): the generalized KL is singular at t = 1
        label_dropout=0.0,
    )
    sample_defaults = dict(
        step_size=1.0 / 64.0,  # Euler step of the CTMC (64 steps from 0 to 1)
        div_free=0.0,  # weight of the corrector (divergence-free) rates
        categorical_dtype="float32",  # or "float64" (needs JAX_ENABLE_X64=1)
        guidance_scale=0.0,  # classifier-free guidance w of a class-conditional model
    )
    # elbo_time_samples: stratified times per held-out example
    evaluate_defaults = dict(elbo_time_samples=8, **TEXT_EVALUATE_DEFAULTS)
    choices = {
        "path.kind": ("mixture", "metric"),
        "path.source": ("mask", "uniform"),
        "path.scheduler": ("polynomial", "kinetic_optimal"),
        "path.posterior": ("bayes", "network"),
        "loss.name": tuple(losses.DISCRETE_LOSSES),
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.categorical_dtype": ("float32", "float64"),
    }
    positive = (
        "path.polynomial_n",
        "path.distance_scale",
        "path.distance_power",
        "path.beta_c",
        "path.beta_a",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "evaluate.elbo_time_samples",
        "evaluate.judge_batch_size",
    )
    non_negative = ("sample.div_free", "sample.guidance_scale")
    unit_interval = ("loss.t_max", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        self.path = self.build_path()
        self.sample_solver = solvers.SolverSettings.from_config(config.sample)
        if config.sample.categorical_dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "sample.categorical_dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1."
            )
        if config.sample.guidance_scale > 0 and spec.num_classes is None:
            raise ValueError("sample.guidance_scale > 0 needs a class-conditional model (labels).")

    def build_path(self) -> paths.DiscretePath:
        """The path of `config.path` over the data vocabulary (`registry`)."""
        return registry.build_discrete_path(self.config.path, self.spec.vocab_size)

    @property
    def loss_name(self) -> str:
        """"generalized_kl" (an ELBO) or "cross_entropy" (`flowjax.losses.discrete_loss`)."""
        return self.config.loss.name

    @property
    def posterior(self) -> str:
        """"bayes" or "network" (see the class docstring)."""
        return self.config.path.posterior

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.path.vocab_size}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """x_0 ~ p_0, t (B,), x_t ~ p_t(. | x_0, x_1) and dropped labels, for the global batch."""
        x_1 = batch["x"]
        source_key, time_key, path_key, drop_key = jax.random.split(key, 4)
        t = self._time(time_key, x_1.shape[0])
        x_0 = self.path.source.sample(source_key, x_1.shape)
        out = {**batch, "t": t, "x_t": self.path.sample(path_key, x_0, x_1, t).x_t}
        out = self._with_dropout_seeds(key, out)
        return drop_labels(drop_key, out, self.config.loss.label_dropout, self.spec.num_classes)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return losses.discrete_loss(
            self._posterior(model),
            self.path,
            batch["x"],
            batch["x_t"],
            batch["t"],
            loss=self.loss_name,
            **conditioning(batch),
        )

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        shape = (num, *self.spec.event_shape)
        inputs = {"x": np.asarray(self.path.source.sample(jax.random.key(seed), shape))}
        rng = np.random.default_rng(seed)
        if self.spec.num_classes is not None:
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
        return inputs

    def _posterior(self, network: nnx.Module, guidance_scale: float = 0.0) -> Callable[..., Any]:
        """(x_t, t, **cond) -> posterior logits: the network's, guided with `guidance_scale`
        (classifier-free), then with path.posterior="bayes" the likelihood of x_t added."""
        logits_fn, null_label = network, self.spec.num_classes
        if guidance_scale > 0:
            logits_fn = guidance.guided_logits(network, guidance_scale, null_label=null_label)
        if self.posterior == "network":
            return logits_fn
        return lambda x, t, **cond: self.path.posterior_logits(logits_fn(x, t, **cond), x, t)

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        sc = self.config.sample
        intermediates = len(time_grid) > 2

        def sample(model, batch, key):
            x = solvers.discrete_sample(
                key,
                self._posterior(model, sc.guidance_scale),
                batch["x"],
                self.path,
                solver=self.sample_solver,
                time_grid=time_grid,
                div_free=sc.div_free,
                return_intermediates=intermediates,
                dtype=jnp.dtype(sc.categorical_dtype),
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        return {
            "step_size": sc.step_size,
            "div_free": sc.div_free,
            "categorical_dtype": sc.categorical_dtype,
            "guidance_scale": sc.guidance_scale,
        }

    def log_likelihood(self) -> BatchFn:
        num_time_samples = self.config.evaluate.elbo_time_samples

        def elbo(model, batch, key):
            return losses.discrete_elbo(
                key,
                self._posterior(model),
                self.path,
                batch["x"],
                num_time_samples=num_time_samples,
                **conditioning(batch),
            )

        return elbo

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        nll = metrics.negative_log_likelihood(log_p)
        tokens = math.prod(self.spec.event_shape)
        result = {
            "nelbo_nats": nll["nll_nats"],
            "nelbo_nats_stderr": nll["nll_nats_stderr"],
            "nelbo_bits_per_token": nll["nll_nats"] / (math.log(2.0) * tokens),
            "elbo_perplexity": math.exp(nll["nll_nats"] / tokens),
        }
        if self.spec.toy in metrics.CLOSED_FORM_DENSITY:
            true_nll = metrics.true_negative_log_likelihood(self.spec.toy, points)
            result["true_nll_bits_per_token"] = true_nll / (math.log(2.0) * tokens)
        return result

    def points(self, x: np.ndarray) -> np.ndarray:
        if self.spec.toy in data.DISCRETE_TOYS:
            return np.asarray(data.DISCRETE_TOYS[self.spec.toy].centres(x))
        return super().points(x)
