"""The trainer objective "generator_matching": flows, jumps and their superposition.

Generator Matching (Holderrieth et al., 2024): on the CondOT path x_t = t x_1 + (1 - t) x_0,
a network predicts per coordinate a velocity and/or a jump (its rate and a distribution over
bins), trained by conditional generator matching (MSE for the velocity, the infinitesimal-KL
Bregman divergence for the jump, `flowjax.losses.generator_matching_loss`) and sampled by the
flow, jump, superposition or mixed sampler of `flowjax.solvers.generator_sample`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import losses, paths, solvers
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective, conditioning
from flowjax.train.objectives.flow_matching import FlowMatching


class GeneratorMatching(FlowMatching):
    """Generator Matching (Holderrieth et al., 2024): a `generator_mlp` predicts per coordinate a
    velocity and/or a jump (rate and logits over path.num_bins bins of [path.low, path.high]) for
    the CondOT path x_t = t x_1 + (1 - t) x_0, x_0 ~ N(0, I); the loss is
    `flowjax.losses.generator_matching_loss`. sample.generator picks the sampler: "flow" (the
    velocity only), "jump" (the jump part only) or "superposition" (sample.flow_weight of the
    flow plus 1 - flow_weight of the jump generator, a Markov superposition); sample.flow_method
    "midpoint" / "heun" with the superposition is the mixed sampler. The likelihood is the
    exact-divergence ODE likelihood of the velocity part (none for path.parts="jump": the
    evaluation then reports sample metrics only). Training noise and source samples are those
    of `FlowMatching`."""

    name = "generator_matching"
    default_model = "generator_mlp"
    data_kind = "continuous"
    plot_density = False
    path_defaults = dict(
        parts="flow+jump",  # the network's heads: "flow", "jump" or "flow+jump"
        num_bins=128,  # jump bins per coordinate
        low=-5.0,  # range of the jump bins (the end bins also take the tails)
        high=5.0,
    )
    loss_defaults = dict(
        flow_weight=1.0,
        jump_weight=1.0,
        time_distribution="uniform",
        time_mean=-1.2,
        time_std=1.2,
        t_max=0.999,  # times in [0, t_max): the conditional jump rate is singular at t = 1
        label_dropout=0.0,
    )
    sample_defaults = dict(
        generator="superposition",  # "flow", "jump" or "superposition"
        flow_weight=0.5,  # weight of the flow in the superposition
        flow_method="euler",  # "euler"; "midpoint" / "heun": the mixed sampler
        survival="exact",  # jump probability 1 - exp(-h lambda), or "linear": h lambda
        step_size=0.005,  # in tau = 1 - (1 - t)^(1 / time_power)
        time_power=2.0,  # steps shrink towards t = 1, where jump rates grow
    )
    evaluate_defaults = dict(method="midpoint", step_size=0.05)
    choices = {
        "path.parts": ("flow", "jump", "flow+jump"),
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.generator": ("flow", "jump", "superposition"),
        "sample.flow_method": solvers.GENERATOR_FLOW_METHODS,
        "sample.survival": solvers.SURVIVAL,
        "evaluate.method": solvers.METHODS,
    }
    positive = (
        "path.num_bins",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "sample.time_power",
        "evaluate.step_size",
    )
    non_negative = ("loss.flow_weight", "loss.jump_weight")
    unit_interval = ("loss.t_max", "loss.label_dropout", "sample.flow_weight")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        Objective.__init__(self, config, spec)  # no affine scheduler: the path is CondOT
        c, sc = config.path, config.sample
        self.sample_solver = solvers.SolverSettings.from_config(sc)
        self.evaluate_solver = solvers.SolverSettings.from_config(config.evaluate)
        self.edges = paths.jump.bin_edges(c.low, c.high, c.num_bins)
        if not config.loss.t_max < 1.0:
            raise ValueError("loss.t_max must be < 1: the conditional jump rate is singular at 1.")
        if sc.time_power < 1.0:
            raise ValueError(f"sample.time_power must be >= 1, got {sc.time_power}.")
        needs = {"flow": ("flow",), "jump": ("jump",), "superposition": ("flow", "jump")}
        missing = [p for p in needs[sc.generator] if p not in c.parts]
        if missing:
            raise ValueError(
                f"sample.generator={sc.generator!r} needs the {' and '.join(missing)} part, but "
                f"path.parts={c.parts!r}."
            )
        if sc.flow_method != "euler" and "flow" not in needs[sc.generator]:
            raise ValueError("sample.flow_method other than 'euler' needs a flow part to sample.")

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_bins": self.config.path.num_bins, "parts": self.config.path.parts}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return losses.generator_matching_loss(
            model,
            batch["x_0"],
            batch["x"],
            batch["t"],
            edges=self.edges,
            flow_weight=self.config.loss.flow_weight,
            jump_weight=self.config.loss.jump_weight,
            **conditioning(batch),
        )

    def _generator(self, model: nnx.Module) -> solvers.GeneratorFn:
        c, sc = self.config.path, self.config.sample
        full = solvers.network_generator(model, c.low, c.high)

        def flow(x, t, **cond):
            return solvers.Generator(velocity=full(x, t, **cond).velocity)

        def jump(x, t, **cond):
            g = full(x, t, **cond)
            return solvers.Generator(jump_rate=g.jump_rate, jump_target=g.jump_target)

        if sc.generator == "flow":
            return flow
        if sc.generator == "jump":
            return jump
        return solvers.superpose([flow, jump], [sc.flow_weight, 1.0 - sc.flow_weight])

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        sc = self.config.sample
        intermediates = len(time_grid) > 2

        def sample(model, batch, key):
            x = solvers.generator_sample(
                key,
                self._generator(model),
                batch["x"],
                solver=self.sample_solver,
                time_grid=time_grid,
                time_power=sc.time_power,
                survival=sc.survival,
                flow_method=sc.flow_method,
                return_intermediates=intermediates,
                **conditioning(batch),
            )
            return x.swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        keys = ("generator", "flow_weight", "flow_method", "survival", "step_size", "time_power")
        return {k: sc[k] for k in keys}

    def log_likelihood(self) -> BatchFn:
        has_flow = "flow" in self.config.path.parts

        def log_p(model, batch, key):
            del key  # exact divergence: deterministic
            if not has_flow:
                return jnp.full(batch["x"].shape[:1], jnp.nan, batch["x"].dtype)
            _, log_p1 = solvers.ode_log_likelihood(
                solvers.flow_part(solvers.network_generator(model, 0.0, 1.0)),
                batch["x"],
                solvers.standard_normal_log_density,
                solver=self.evaluate_solver,
                **conditioning(batch),
            )
            return log_p1

        return log_p

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        if "flow" not in self.config.path.parts:
            return {}
        return super().likelihood_metrics(log_p, points)
