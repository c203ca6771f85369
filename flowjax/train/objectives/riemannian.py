"""The trainer objective "riemannian_flow_matching": flow matching on Riemannian manifolds.

Flow Matching on General Geometries (Chen & Lipman, 2024) and Flow Matching Guide and Code
(Lipman et al., 2024), section 5: the geodesic path x_t = exp_{x_0}(kappa_t log_{x_0}(x_1))
(eq. 5.17 of the Guide) on a sphere, flat torus, Euclidean space or their product, the
Riemannian CFM loss on tangent vectors, the manifold ODE sampler and the log-likelihood w.r.t.
the Riemannian volume (`flowjax.solvers.riemannian`).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from flowjax import losses, metrics, solvers
from flowjax.train import registry
from flowjax.train.objectives.base import (
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    conditioning,
    drop_labels,
)


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
        manifold = registry.resolve_manifold(config.path.manifold, spec.toy)
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
        self.path = registry.build_geodesic_path(config.path, manifold)
        self.manifold = manifold
        self.sample_solver = solvers.SolverSettings.from_config(config.sample)
        self.evaluate_solver = solvers.SolverSettings.from_config(config.evaluate)

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
                solver=self.sample_solver,
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
        def log_p(model, batch, key):
            del key  # exact divergence: deterministic
            _, log_p1 = solvers.riemannian_log_likelihood(
                model,
                batch["x"],
                self.manifold,
                solver=self.evaluate_solver,
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
