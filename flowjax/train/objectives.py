"""Training objectives: what the trainer learns, how it samples and how it evaluates.

The trainer (`flowjax.train`) is one loop for every kind of flow; the objective named by
`config.objective` supplies what differs between them. An objective is a subclass of
`Objective`, built once per run from the config and a description of the data (`DataSpec`):

  config       class attributes: the defaults of its `path` and `loss` sections and of its own
               keys in the shared `sample` and `evaluate` sections (merged into
               `default_config(objective)`), the allowed values of its keys (`choices`,
               `positive`, `non_negative`, `unit_interval`), the model it trains by default and
               the kind of data it needs ("continuous" points or "discrete" tokens).
               `__init__` builds its path and raises a ValueError for a bad combination of
               settings (it runs during config validation, before anything is compiled).
  model        `model_kwargs()`: extra constructor arguments of the network (a vocabulary size).
  training     `draw_step_noise(key, batch)`: all the randomness of one update, drawn for the
               whole global batch, so that accumulating gradients over micro-batches computes
               exactly the per-example terms of one large batch; `loss(model, batch)`: the
               scalar loss of one (micro-)batch of that output.
  sampling     `source_batch(num, seed)`: host arrays of source samples (and class labels);
               `sampler(time_grid)`: a function (model, batch, key) -> samples at the last time,
               or (B, len(time_grid), *event) for a longer grid; `sample_settings()`: the
               solver settings, for the record.
  evaluation   `log_likelihood()`: a function (model, batch, key) -> per-example log-likelihood
               in nats, or a lower bound on it; `likelihood_metrics(log_p, points)`: the named
               metrics of metrics.json; `points(x)`: samples as points of the plane (plots,
               distances).

The functions returned by `sampler` and `log_likelihood` are compiled over the device mesh by
`flowjax.train.inference`; `key` is a PRNG key (unused by deterministic solvers).

Objectives:
  flow_matching            continuous flow matching (Flow Matching Guide and Code, Lipman et al.,
                           2024, section 4): affine paths, the CFM loss (eq. 4.23 / 4.64), ODE
                           sampling and exact ODE likelihoods (eq. 3.31).
  discrete_flow_matching   discrete flow matching (Guide section 7; Shaul et al., 2024, "Flow
                           Matching with General Discrete Paths"): mixture paths (mask or uniform
                           source, polynomial or kinetic-optimal schedule) and metric-induced
                           paths, the generalized KL or cross-entropy loss, the CTMC Euler sampler
                           and the ELBO in bits per token.
  riemannian_flow_matching Riemannian flow matching (Chen & Lipman, 2024, "Flow Matching on
                           General Geometries"; Guide section 5): the geodesic path on a sphere,
                           flat torus, Euclidean space or their product, the loss on tangent
                           vectors, the manifold ODE sampler and the Riemannian log-likelihood.
  simfree_node             neural ODEs on paired data (Kim et al., 2024, "Simulation-Free Training
                           of Neural ODEs on Paired Data"): flow matching in a learned embedding
                           space, or the data-space and backprop-through-the-solver baselines
                           (`flowjax.train.simfree_node`).

Adding an objective: subclass `Objective`, fill in its class attributes and methods, and add it
to `OBJECTIVES`; configs then select it with `default_config("<name>")`.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, guidance, losses, manifolds, metrics, paths, solvers
from flowjax.train import registry

Batch = dict[str, jax.Array]  # "x": (B, *event); optionally "label": (B,)
BatchFn = Callable[[nnx.Module, Batch, jax.Array], jax.Array]  # (model, batch, key) -> array


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What an objective needs to know about the data, read from its config without iterating.

    Attributes:
      event_shape: the shape of one example x.
      num_classes: the number of class labels, or None for unlabelled data.
      vocab_size: the number of token values of discrete data, or None for continuous data.
      toy: the name of a toy distribution, or None for other sources.
    """

    event_shape: tuple[int, ...]
    num_classes: int | None
    vocab_size: int | None
    toy: str | None

    @classmethod
    def from_config(cls, data_config: ml_collections.ConfigDict) -> DataSpec:
        return cls(
            event_shape=tuple(data.event_shape(data_config)),
            num_classes=data.num_classes(data_config),
            vocab_size=data.vocab_size(data_config),
            toy=data_config.name if data_config.source == "toy" else None,
        )


def drop_labels(key: jax.Array, batch: Batch, probability: float, null_label: int | None) -> Batch:
    """The batch with each label replaced by `null_label` with `probability` (for guidance)."""
    if null_label is None or probability <= 0:
        return batch
    drop = jax.random.bernoulli(key, probability, batch["label"].shape)
    return {**batch, "label": jnp.where(drop, null_label, batch["label"])}


def conditioning(batch: Batch) -> dict[str, jax.Array]:
    """The model's keyword arguments from a batch: its labels, if it has any."""
    return {"label": batch["label"]} if "label" in batch else {}


class Objective(abc.ABC):
    """One kind of flow for the shared trainer; see the module docstring for the contract."""

    name: ClassVar[str]
    default_model: ClassVar[str]
    data_kind: ClassVar[str]  # "continuous" or "discrete"
    path_defaults: ClassVar[dict[str, Any]]
    loss_defaults: ClassVar[dict[str, Any]]
    sample_defaults: ClassVar[dict[str, Any]]
    evaluate_defaults: ClassVar[dict[str, Any]]
    choices: ClassVar[dict[str, tuple]] = {}
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    unit_interval: ClassVar[tuple[str, ...]] = ()
    plot_density: ClassVar[bool] = False  # whether `log_likelihood` is cheap enough for a grid

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        self.config = config
        self.spec = spec
        kind = "discrete" if spec.vocab_size is not None else "continuous"
        if kind != self.data_kind:
            raise ValueError(
                f"The objective {self.name!r} trains on {self.data_kind} data, but "
                f"config.data={config.data.to_dict()} is {kind}."
            )
        model_kind = registry.MODELS[config.model.name].data_kind
        if model_kind != self.data_kind:
            raise ValueError(
                f"The model {config.model.name!r} reads {model_kind} data; the objective "
                f"{self.name!r} needs a {self.data_kind} model such as {self.default_model!r}."
            )
        if config.loss.get("label_dropout", 0.0) > 0 and spec.num_classes is None:
            raise ValueError(
                "loss.label_dropout > 0 needs class labels, but the dataset has none "
                f"(config.data={config.data.to_dict()})."
            )

    def model_kwargs(self) -> dict[str, Any]:
        """Extra constructor arguments of the model."""
        return {}

    def _time(self, key: jax.Array, batch_size: int, dtype=jnp.float32) -> jax.Array:
        """Training times (B,) from the `loss` section's time distribution."""
        c = self.config.loss
        return losses.sample_time(
            key,
            batch_size,
            distribution=c.time_distribution,
            mean=c.time_mean,
            std=c.time_std,
            t_max=c.t_max,
            dtype=dtype,
        )

    @abc.abstractmethod
    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """The global batch with all the randomness of one update added."""

    @abc.abstractmethod
    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        """The scalar loss of a (micro-)batch of `draw_step_noise`'s output."""

    @abc.abstractmethod
    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` source samples "x" (and uniform class labels for a conditional model)."""

    @abc.abstractmethod
    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """(model, batch, key) -> samples from batch["x"] (see the module docstring)."""

    @abc.abstractmethod
    def sample_settings(self) -> dict[str, Any]:
        """The sampler's settings, recorded with its results."""

    @abc.abstractmethod
    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> log p(batch["x"]) in nats (or a lower bound), shape (B,)."""

    @abc.abstractmethod
    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        """Named metrics of the per-example log-likelihoods of the held-out `points`."""

    def points(self, x: np.ndarray) -> np.ndarray:
        """Examples as float points (for plots and sample distances)."""
        return np.asarray(x, np.float32)


# Continuous flow matching --------------------------------------------------------------------


class FlowMatching(Objective):
    """Flow Matching Guide and Code (Lipman et al., 2024), section 4.5, eq. 4.23 with the affine
    path of eq. 4.64: E_{t, x_0 ~ N(0, I), x_1} || u_t^theta(x_t) - dx_t ||^2 (or the x_1- /
    x_0-prediction of eqs. 4.65-4.67), sampled by solving dx/dt = u_t(x) (eq. 3.5) and evaluated
    by the exact-divergence likelihood log p_1(x_1) = log p_0(x_0) - int div u_t dt (eq. 3.31)."""

    name = "flow_matching"
    default_model = "mlp"
    data_kind = "continuous"
    plot_density = True
    path_defaults = dict(
        scheduler="cond_ot",  # one of registry.SCHEDULERS
        polynomial_n=1.0,  # exponent of the "polynomial" scheduler
        vp_beta_min=0.1,  # range of the "vp" scheduler
        vp_beta_max=20.0,
    )
    loss_defaults = dict(
        prediction="velocity",  # regression target: "velocity", "target" (x_1) or "epsilon" (x_0)
        time_distribution="uniform",  # or "logit_normal": t = sigmoid(N(time_mean, time_std^2))
        time_mean=-1.2,
        time_std=1.2,
        t_max=1.0,  # times are drawn in [0, t_max)
        label_dropout=0.0,  # probability of replacing a class label by the null label (CFG)
    )
    sample_defaults = dict(
        method="midpoint",  # one of flowjax.solvers.METHODS
        step_size=0.05,
        density_grid_size=100,  # points per side of the grid of the density plot (2D data)
    )
    evaluate_defaults = dict(method="midpoint", step_size=0.05)
    choices = {
        "path.scheduler": tuple(registry.SCHEDULERS),
        "loss.prediction": tuple(losses.REGRESSION_TARGETS),
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.method": solvers.METHODS,
        "evaluate.method": solvers.METHODS,
    }
    positive = (
        "path.polynomial_n",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "sample.density_grid_size",
        "evaluate.step_size",
    )
    unit_interval = ("loss.t_max", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        self.path = registry.build_path(config.path)

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """x_0 ~ N(0, I) of the shape of batch["x"], t (B,), and dropped labels."""
        x_1 = batch["x"]
        noise_key, time_key, drop_key = jax.random.split(key, 3)
        out = dict(batch)
        out["x_0"] = jax.random.normal(noise_key, x_1.shape, x_1.dtype)
        out["t"] = self._time(time_key, x_1.shape[0], x_1.dtype)
        return drop_labels(drop_key, out, self.config.loss.label_dropout, self.spec.num_classes)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return losses.cfm_loss(
            model,
            self.path,
            batch["x_0"],
            batch["x"],
            batch["t"],
            prediction=self.config.loss.prediction,
            **conditioning(batch),
        )

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        inputs = {"x": rng.standard_normal((num, *self.spec.event_shape), dtype=np.float32)}
        if self.spec.num_classes is not None:
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
        return inputs

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        sc = self.config.sample
        intermediates = len(time_grid) > 2

        def sample(model, batch, key):
            del key  # the ODE is deterministic
            x = solvers.ode_sample(
                model,
                batch["x"],
                method=sc.method,
                step_size=sc.step_size,
                time_grid=time_grid,
                return_intermediates=intermediates,
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        return {"method": self.config.sample.method, "step_size": self.config.sample.step_size}

    def log_likelihood(self) -> BatchFn:
        ev = self.config.evaluate

        def log_p(model, batch, key):
            del key  # exact divergence: deterministic
            _, log_p1 = solvers.ode_log_likelihood(
                model,
                batch["x"],
                solvers.standard_normal_log_density,
                method=ev.method,
                step_size=ev.step_size,
                exact_divergence=True,
                **conditioning(batch),
            )
            return log_p1

        return log_p

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        result = metrics.negative_log_likelihood(log_p)
        dims = math.prod(self.spec.event_shape)
        result["nll_bits_per_dim"] = result["nll_nats"] / (math.log(2.0) * dims)
        return result


# Discrete flow matching ----------------------------------------------------------------------


class DiscreteFlowMatching(Objective):
    """Discrete flow matching on token data (`flowjax.paths.discrete`, `.metric_induced`).

    path.kind="mixture": p_t(x^i | x_1) = (1 - kappa_t) p_0 + kappa_t delta_{x_1^i} with
    path.source "mask" (an extra token, id = the data vocabulary size) or "uniform", and
    path.scheduler "polynomial" (kappa_t = t^n) or "kinetic_optimal" (Shaul et al., 2024).
    path.kind="metric": p_t(x | x_1) = softmax(-beta_t d(x, x_1)), uniform source, with
    d(x, y) = (distance_scale |x - y|)^distance_power and beta_t = beta_c (t/(1 - t))^beta_a.
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
    evaluate_defaults = dict(elbo_time_samples=8)  # stratified times per held-out example
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
    )
    non_negative = ("sample.div_free", "sample.guidance_scale")
    unit_interval = ("loss.t_max", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        self.path = self._build_path(config.path, spec.vocab_size)
        if config.sample.categorical_dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "sample.categorical_dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1."
            )
        if config.sample.guidance_scale > 0 and spec.num_classes is None:
            raise ValueError("sample.guidance_scale > 0 needs a class-conditional model (labels).")

    @staticmethod
    def _build_path(c: ml_collections.ConfigDict, data_vocab: int):
        if c.kind == "metric":
            if c.source != "uniform":
                raise ValueError(
                    "The metric-induced path starts from the uniform distribution; set "
                    "path.source='uniform' with path.kind='metric'."
                )
            return paths.MetricInducedProbPath(
                data_vocab,
                paths.TokenDistance(scale=c.distance_scale, power=c.distance_power),
                paths.PowerBeta(c=c.beta_c, a=c.beta_a),
            )
        source = (
            paths.MaskSource(data_vocab + 1)
            if c.source == "mask"
            else paths.UniformSource(data_vocab)
        )
        if c.scheduler == "kinetic_optimal":
            scheduler = paths.KineticOptimalScheduler.for_source(source)
        else:
            scheduler = paths.PolynomialScheduler(n=c.polynomial_n)
        return paths.MixtureDiscreteProbPath(scheduler, source)

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.path.vocab_size}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """x_0 ~ p_0, t (B,), x_t ~ p_t(. | x_0, x_1) and dropped labels, for the global batch."""
        x_1 = batch["x"]
        source_key, time_key, path_key, drop_key = jax.random.split(key, 4)
        t = self._time(time_key, x_1.shape[0])
        x_0 = self.path.source.sample(source_key, x_1.shape)
        out = {**batch, "t": t, "x_t": self.path.sample(path_key, x_0, x_1, t).x_t}
        return drop_labels(drop_key, out, self.config.loss.label_dropout, self.spec.num_classes)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return losses.discrete_loss(
            self._posterior(model),
            self.path,
            batch["x"],
            batch["x_t"],
            batch["t"],
            loss=self.config.loss.name,
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
        if self.config.path.posterior == "network":
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
                step_size=sc.step_size,
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
        }
        if self.spec.toy in metrics.CLOSED_FORM_DENSITY:
            true_nll = metrics.true_negative_log_likelihood(self.spec.toy, points)
            result["true_nll_bits_per_token"] = true_nll / (math.log(2.0) * tokens)
        return result

    def points(self, x: np.ndarray) -> np.ndarray:
        if self.spec.toy in data.DISCRETE_TOYS:
            return np.asarray(data.DISCRETE_TOYS[self.spec.toy].centres(x))
        return super().points(x)


# Riemannian flow matching ------------------------------------------------------------------


class RiemannianFlowMatching(Objective):
    """Flow Matching on General Geometries (Chen & Lipman, 2024), section 3, and Flow Matching
    Guide and Code (Lipman et al., 2024), section 5: x_0 from the manifold's base distribution
    (uniform on spheres and tori), the geodesic path x_t = exp_{x_0}(kappa_t log_{x_0}(x_1))
    (`flowjax.paths.GeodesicProbPath`), the loss E ||proju_{x_t} v_theta(x_t, t) - dx_t||^2
    (`flowjax.losses.riemannian_cfm_loss`), samples from `flowjax.solvers.riemannian_sample` and
    the log-likelihood w.r.t. the Riemannian volume from
    `flowjax.solvers.riemannian_log_likelihood`.

    The manifold is `path.manifold` ("S2", "T2", "S2xT1xR3", ...; see
    `flowjax.manifolds.parse_manifold`), or, when that is "", the one the toy data live on. The
    model must take it (`manifold_mlp`: it projects its output onto the tangent space and reads
    torus angles through Fourier features).
    """

    name = "riemannian_flow_matching"
    default_model = "manifold_mlp"
    data_kind = "continuous"
    path_defaults = dict(
        manifold="",  # "S2", "T2", "S2xT1xR3", ...; "" takes the toy data's manifold
        scheduler="cond_ot",  # kappa_t: "cond_ot" (t) or "polynomial" (t^polynomial_n)
        polynomial_n=1.0,
    )
    loss_defaults = dict(
        time_distribution="uniform",  # or "logit_normal": t = sigmoid(N(time_mean, time_std^2))
        time_mean=-1.2,
        time_std=1.2,
        t_max=1.0,  # times are drawn in [0, t_max)
        label_dropout=0.0,  # probability of replacing a class label by the null label (CFG)
    )
    sample_defaults = dict(
        method="midpoint",  # one of flowjax.solvers.RIEMANNIAN_METHODS
        step_size=0.05,
        manifold_update="project",  # "project" (x + h v, then projx) or "expmap" (exp_x(h v))
    )
    evaluate_defaults = dict(method="midpoint", step_size=0.05)
    choices = {
        "path.scheduler": ("cond_ot", "polynomial"),
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.method": solvers.RIEMANNIAN_METHODS,
        "sample.manifold_update": solvers.MANIFOLD_UPDATES,
        "evaluate.method": solvers.RIEMANNIAN_METHODS,
    }
    positive = (
        "path.polynomial_n",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "evaluate.step_size",
    )
    unit_interval = ("loss.t_max", "loss.label_dropout")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        manifold = self._manifold(config.path.manifold, spec)
        if spec.event_shape[-1:] != (manifold.ambient_dim,):
            raise ValueError(
                f"path.manifold={manifold} has points of shape (..., {manifold.ambient_dim}), but "
                f"the data's examples have shape {spec.event_shape}."
            )
        model_cls = registry.MODELS[config.model.name].cls
        if "manifold" not in inspect.signature(model_cls.__init__).parameters:
            raise ValueError(
                f"The model {config.model.name!r} does not take a manifold; the objective "
                f"{self.name!r} needs one that does, such as {self.default_model!r}."
            )
        scheduler = registry.SCHEDULERS[config.path.scheduler](config.path)
        self.path = paths.GeodesicProbPath(scheduler, manifold)
        self.manifold = manifold

    @staticmethod
    def _manifold(name: str, spec: DataSpec) -> manifolds.Manifold:
        toy_manifold = data.toy_manifold(spec.toy) if spec.toy is not None else None
        if not name:
            if toy_manifold is None:
                raise ValueError(
                    "Set path.manifold (e.g. 'S2', 'T2' or 'S2xT1xR3') to say where the data live; "
                    "only the manifold toys (torus_gaussians, sphere_vmf) imply it."
                )
            return toy_manifold
        manifold = manifolds.parse_manifold(name)
        if toy_manifold is not None and manifold != toy_manifold:
            raise ValueError(
                f"path.manifold={name!r} is {manifold}, but the toy {spec.toy!r} lives on "
                f"{toy_manifold}; set path.manifold='' to use the toy's."
            )
        return manifold

    def model_kwargs(self) -> dict[str, Any]:
        return {"manifold": self.manifold}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """x_0 from the base distribution, t (B,), and dropped labels."""
        x_1 = batch["x"]
        noise_key, time_key, drop_key = jax.random.split(key, 3)
        out = dict(batch)
        out["x_0"] = self.manifold.random_base(noise_key, x_1.shape[:-1], x_1.dtype)
        out["t"] = self._time(time_key, x_1.shape[0], x_1.dtype)
        return drop_labels(drop_key, out, self.config.loss.label_dropout, self.spec.num_classes)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return losses.riemannian_cfm_loss(
            model, self.path, batch["x_0"], batch["x"], batch["t"], **conditioning(batch)
        )

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        shape = (num, *self.spec.event_shape[:-1])
        inputs = {"x": np.asarray(self.manifold.random_base(jax.random.key(seed), shape))}
        if self.spec.num_classes is not None:
            rng = np.random.default_rng(seed)
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
        return inputs

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        sc = self.config.sample
        intermediates = len(time_grid) > 2

        def sample(model, batch, key):
            del key  # the ODE is deterministic
            x = solvers.riemannian_sample(
                model,
                batch["x"],
                self.manifold,
                method=sc.method,
                step_size=sc.step_size,
                time_grid=time_grid,
                update=sc.manifold_update,
                return_intermediates=intermediates,
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        return {
            "method": sc.method,
            "step_size": sc.step_size,
            "manifold_update": sc.manifold_update,
        }

    def log_likelihood(self) -> BatchFn:
        ev = self.config.evaluate

        def log_p(model, batch, key):
            del key  # exact divergence: deterministic
            _, log_p1 = solvers.riemannian_log_likelihood(
                model,
                batch["x"],
                self.manifold,
                method=ev.method,
                step_size=ev.step_size,
                **conditioning(batch),
            )
            return log_p1

        return log_p

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        """The NLL in nats (density w.r.t. the Riemannian volume) and in bits per intrinsic
        dimension of the manifold (2 for S^2, although its points have 3 coordinates)."""
        result = metrics.negative_log_likelihood(log_p)
        dims = self.manifold.dim * math.prod(self.spec.event_shape[:-1])
        result["nll_bits_per_dim"] = result["nll_nats"] / (math.log(2.0) * dims)
        return result


OBJECTIVES: dict[str, type[Objective]] = {
    FlowMatching.name: FlowMatching,
    DiscreteFlowMatching.name: DiscreteFlowMatching,
    RiemannianFlowMatching.name: RiemannianFlowMatching,
}
"""The objectives by `config.objective`."""


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}.")
    return OBJECTIVES[name]


def build_objective(config: ml_collections.ConfigDict, spec: DataSpec | None = None) -> Objective:
    """The objective of `config` for its data (read from config.data when `spec` is None)."""
    spec = DataSpec.from_config(config.data) if spec is None else spec
    return objective_class(config.objective)(config, spec)


# Objectives in modules of their own (they subclass `Objective`, so they are imported last).
from flowjax.train.simfree_node import SimFreeNODEObjective  # noqa: E402

OBJECTIVES[SimFreeNODEObjective.name] = SimFreeNODEObjective
