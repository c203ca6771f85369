"""The trainer objective "simfree_node": neural ODEs on paired data (x, y).

Simulation-free training of neural ODEs on paired data (Kim et al., 2024): a
`flowjax.models.SimFreeNODE` (encoders f, g, decoder h, velocity v) trained with one of
`loss.method`:

  "embedding"   the method (section 4, eq. 6-8): flow matching from z_0 = f(x) to z_1 = g(y) on
                the linear (path.scheduler="cond_ot") or trigonometric ("cosine") path, plus the
                label autoencoder ||h(g(y) + sigma xi) - y||^2 with sigma = loss.label_noise;
                t forced to 0 with probability loss.zero_time_probability
                (`flowjax.losses.simfree_node_loss`).
  "data_space"  flow matching from x to y directly (inputs and targets zero-padded to one size):
                the baseline that fails when the straight paths cross (section 3).
  "backprop"    an ordinary neural ODE: the same f, v, h trained on the cross-entropy (or MSE)
                of h(z(1)) through the solver loss.backprop_method (dopri5 by default,
                differentiated by diffrax's RecursiveCheckpointAdjoint).

Data: pairs from a labelled source (class labels: one-hot targets, predictions by argmax of h's
logits) or a regression set of `flowjax.data.tabular` (float "target" rows).

Sampling (`--mode=sample`) predicts the targets of `sample.num_samples` held-out inputs (the
decoded outputs h(z(1)); whole trajectories decode h(z(t)) at the trajectory times).
Evaluation (`--mode=evaluate`) scores held-out pairs after 1, 2, 10 (`evaluate.euler_steps`)
Euler steps and with the adaptive solver (`evaluate.adaptive_method`), whose number of function
evaluations (NFE) per batch it reports: accuracy (classification) or RMSE (regression, in the
original units of the tabular sets). Its `log_likelihood` returns these per-example scores as
columns (B, len(euler_steps) + 2), the last the NFE of the batch's adaptive solve.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, losses, solvers
from flowjax.data import tabular
from flowjax.models.simfree_node import SimFreeNODE
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

METHODS = ("embedding", "data_space", "backprop")
ADAPTIVE = ("dopri5", "tsit5")


class SimFreeNODEObjective(Objective):
    """See the module docstring."""

    name = "simfree_node"
    default_model = "simfree_node"
    data_kind = "continuous"
    path_defaults = dict(scheduler="cond_ot")  # "cond_ot" (linear) or "cosine" (trigonometric)
    loss_defaults = dict(
        method="embedding",  # "embedding", "data_space" or "backprop"
        label_noise=3.0,  # sigma of the label autoencoder's noise
        zero_time_probability=0.1,  # probability of training at t = 0
        backprop_method="dopri5",  # "backprop": the solver trained through
        backprop_steps=10,  # "backprop" with a fixed-step solver: its number of steps
        atol=1e-3,  # "backprop" with an adaptive solver: its tolerances
        rtol=1e-3,
    )
    sample_defaults = dict(method="dopri5", steps=1, atol=1e-3, rtol=1e-3)
    evaluate_defaults = dict(euler_steps=(1, 2, 10), adaptive_method="dopri5", atol=1e-3, rtol=1e-3)
    choices = {
        "path.scheduler": ("cond_ot", "cosine"),
        "loss.method": METHODS,
        "loss.backprop_method": solvers.METHODS,
        "sample.method": solvers.METHODS,
        "evaluate.adaptive_method": ADAPTIVE,
    }
    positive = (
        "loss.backprop_steps",
        "loss.atol",
        "loss.rtol",
        "sample.steps",
        "sample.atol",
        "sample.rtol",
        "evaluate.atol",
        "evaluate.rtol",
    )
    non_negative = ("loss.label_noise",)
    unit_interval = ("loss.zero_time_probability",)

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if not issubclass(registry.MODELS[config.model.name].cls, SimFreeNODE):
            raise ValueError(
                f"The objective {self.name!r} trains a SimFreeNODE (model.name='simfree_node'), "
                f"got model.name={config.model.name!r}."
            )
        self.target_dim = None
        if spec.num_classes is None:
            if config.data.get("source") != "tabular":
                raise ValueError(
                    f"The objective {self.name!r} learns a map from inputs to targets: it needs "
                    "labelled data (class labels) or a regression set of flowjax.data.tabular "
                    f"(source='tabular'), got config.data={config.data.to_dict()}."
                )
            self.target_dim = tabular.tabular_set(config.data.name).target_dim
        steps = config.evaluate.euler_steps
        if not steps or any(not isinstance(n, int) or n < 1 for n in steps):
            raise ValueError(
                f"evaluate.euler_steps must be a non-empty tuple of positive ints, got {steps!r}."
            )
        self.path = registry.build_path(config.path)
        self.method = config.loss.method
        input_size = math.prod(spec.event_shape)
        output_dim = spec.num_classes or self.target_dim
        self.latent_dim = (
            max(input_size, output_dim) if self.method == "data_space" else config.model.latent_dim
        )
        self.scale = (
            tabular.target_scale(config.data.name) if config.data.source == "tabular" else 1.0
        )
        self.train_solver = fixed_steps(
            config.loss.backprop_method, config.loss.backprop_steps, config.loss
        )
        self.sample_solver = fixed_steps(config.sample.method, config.sample.steps, config.sample)

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = {"embedding": "identity" if self.method == "data_space" else "learned"}
        if self.target_dim is not None:
            kwargs["target_dim"] = self.target_dim
        return kwargs

    def _targets(self, batch: Batch) -> jax.Array:
        """The labels (B,) of a classification batch, or the float targets (B, K)."""
        return batch["label"] if self.spec.num_classes is not None else batch["target"]

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """t (B,) (0 with probability loss.zero_time_probability) and the autoencoder's noise
        xi (B, L); nothing for "backprop", which is deterministic."""
        if self.method == "backprop":
            return dict(batch)
        size = batch["x"].shape[0]
        time_key, noise_key = jax.random.split(key)
        t = losses.simfree_node_times(time_key, size, self.config.loss.zero_time_probability)
        xi = jax.random.normal(noise_key, (size, self.latent_dim), jnp.float32)
        return {**batch, "t": t, "xi": xi}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        c = self.config.loss
        y = self._targets(batch)
        if self.method == "backprop":
            loss, _ = losses.backprop_node_loss(
                model, batch["x"], y, num_classes=self.spec.num_classes, solver=self.train_solver
            )
            return loss
        return losses.simfree_node_loss(
            model,
            self.path,
            batch["x"],
            y,
            batch["t"],
            batch["xi"],
            label_noise=c.label_noise,
        )

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` held-out pairs (config.data with config.evaluate.data over it)."""
        heldout = {**self.config.data.to_dict(), **self.config.evaluate.data.to_dict()}
        return dict(next(data.build_dataset(heldout, global_batch_size=num, seed=seed)))

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        def predict(model, batch, key):
            del key  # the ODE is deterministic
            y = solvers.ode_predict(
                model, batch["x"], solver=self.sample_solver, time_grid=time_grid
            )
            return y.swapaxes(0, 1) if len(time_grid) > 2 else y

        return predict

    def sample_settings(self) -> dict[str, Any]:
        s = self.sample_solver
        return dict(method=s.method, step_size=s.step_size, atol=s.atol, rtol=s.rtol)

    def _score(self, prediction: jax.Array, batch: Batch) -> jax.Array:
        """Per example: 1.0 if the class is right, or the squared error in original units."""
        y = self._targets(batch)
        if self.spec.num_classes is not None:
            return (jnp.argmax(prediction, axis=-1) == y).astype(jnp.float32)
        return jnp.mean((prediction - y) ** 2, axis=-1) * self.scale**2

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> per-example scores (B, len(euler_steps) + 2): after each
        number of Euler steps, with the adaptive solver, and that solve's NFE (see the module
        docstring; not a log-likelihood: this objective is scored by its predictions)."""
        ev = self.config.evaluate
        adaptive = solvers.SolverSettings(method=ev.adaptive_method, atol=ev.atol, rtol=ev.rtol)

        def scores(model, batch, key):
            del key
            x, columns = batch["x"], []
            for n in ev.euler_steps:
                prediction = solvers.ode_predict(model, x, method="euler", step_size=1.0 / n)
                columns.append(self._score(prediction, batch))
            prediction, nfe = solvers.ode_predict(model, x, solver=adaptive, return_nfe=True)
            columns.append(self._score(prediction, batch))
            columns.append(jnp.broadcast_to(nfe.astype(jnp.float32), (x.shape[0],)))
            return jnp.stack(columns, axis=1)

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        """Accuracy or RMSE per solver, and the adaptive solver's mean NFE per batch."""
        ev, classify = self.config.evaluate, self.spec.num_classes is not None
        names = [f"euler_{n}" for n in ev.euler_steps] + [ev.adaptive_method]
        result = {}
        for name, column in zip(names, log_p.T):
            if classify:
                result[f"accuracy_{name}"] = float(np.mean(column))
            else:
                result[f"rmse_{name}"] = float(np.sqrt(np.mean(column)))
        result[f"nfe_{ev.adaptive_method}"] = float(np.mean(log_p[:, -1]))
        return result


def fixed_steps(method: str, steps: int, tolerances: ml_collections.ConfigDict):
    """The solver settings of `steps` equal steps of a fixed-step `method`, or of the adaptive
    `method` with the tolerances atol, rtol of the config section `tolerances`."""
    fixed = method in solvers.EVALS_PER_STEP
    return solvers.SolverSettings(
        method=method,
        step_size=1.0 / steps if fixed else None,
        atol=tolerances.atol,
        rtol=tolerances.rtol,
    )
