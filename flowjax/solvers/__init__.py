"""Samplers and likelihoods: ODE solvers over compiled loops (and diffrax for adaptive steps),
on R^n and on Riemannian manifolds; the Euler samplers of discrete (CTMC) flows and of jump
processes. Every solver takes its settings as one `SolverSettings` (`solver=`) or as keyword
arguments (see `flowjax.solvers.settings`); a random solver takes its PRNG key first, a
deterministic one that can estimate with randomness (Hutchinson probes, a refiner) as `key=`."""

from flowjax.solvers.autoregressive import autoregressive_sample, nucleus_weights
from flowjax.solvers.discrete import discrete_sample, sample_categorical
from flowjax.solvers.divergence import (
    divergence_estimator,
    divergence_passes,
    exact_divergence,
    hutchinson_divergence,
    hutchinson_probes,
)
from flowjax.solvers.fds import (
    FlowDivergenceSampler,
    ModelPasses,
    sampling_passes,
    step_velocity,
    x_prediction_floor,
)
from flowjax.solvers.generator import FLOW_METHODS as GENERATOR_FLOW_METHODS
from flowjax.solvers.generator import (
    SURVIVAL,
    BinnedJump,
    Generator,
    GeneratorFn,
    flow_part,
    generator_sample,
    network_generator,
    superpose,
)
from flowjax.solvers.integrate import (
    ADAPTIVE_EVALS_PER_STEP,
    EVALS_PER_STEP,
    METHODS,
    Refinement,
    integrate,
)
from flowjax.solvers.likelihood import (
    ode_log_likelihood,
    ode_sample_with_log_likelihood,
    standard_normal_log_density,
)
from flowjax.solvers.flm import (
    alpha_segments,
    euler_map,
    flm_sample,
    flow_map_sample,
    taylor_map,
)
from flowjax.solvers.masked import infinite_mask_transition, masked_diffusion_sample
from flowjax.solvers.ode import PairedFlow, ode_predict, ode_sample
from flowjax.solvers.settings import DIVERGENCES, SolverSettings
from flowjax.solvers.time_grids import edm_time_grid
from flowjax.solvers.riemannian import (
    MANIFOLD_UPDATES,
    RIEMANNIAN_METHODS,
    riemannian_log_likelihood,
    riemannian_sample,
)

__all__ = [
    "ADAPTIVE_EVALS_PER_STEP",
    "DIVERGENCES",
    "EVALS_PER_STEP",
    "GENERATOR_FLOW_METHODS",
    "SURVIVAL",
    "BinnedJump",
    "Generator",
    "GeneratorFn",
    "flow_part",
    "generator_sample",
    "network_generator",
    "superpose",
    "METHODS",
    "MANIFOLD_UPDATES",
    "RIEMANNIAN_METHODS",
    "FlowDivergenceSampler",
    "ModelPasses",
    "PairedFlow",
    "Refinement",
    "SolverSettings",
    "autoregressive_sample",
    "discrete_sample",
    "divergence_estimator",
    "divergence_passes",
    "edm_time_grid",
    "exact_divergence",
    "hutchinson_divergence",
    "hutchinson_probes",
    "integrate",
    "infinite_mask_transition",
    "masked_diffusion_sample",
    "alpha_segments",
    "euler_map",
    "flm_sample",
    "flow_map_sample",
    "taylor_map",
    "nucleus_weights",
    "ode_log_likelihood",
    "ode_predict",
    "ode_sample",
    "ode_sample_with_log_likelihood",
    "riemannian_log_likelihood",
    "riemannian_sample",
    "sample_categorical",
    "sampling_passes",
    "standard_normal_log_density",
    "step_velocity",
    "x_prediction_floor",
]
