"""Samplers and likelihoods: ODE solvers over compiled loops (and diffrax for adaptive steps)."""

from flowjax.solvers.divergence import (
    exact_divergence,
    hutchinson_divergence,
    hutchinson_probes,
)
from flowjax.solvers.integrate import EVALS_PER_STEP, METHODS, integrate
from flowjax.solvers.likelihood import (
    ode_log_likelihood,
    ode_sample_with_log_likelihood,
    standard_normal_log_density,
)
from flowjax.solvers.ode import ode_sample

__all__ = [
    "EVALS_PER_STEP",
    "METHODS",
    "exact_divergence",
    "hutchinson_divergence",
    "hutchinson_probes",
    "integrate",
    "ode_log_likelihood",
    "ode_sample",
    "ode_sample_with_log_likelihood",
    "standard_normal_log_density",
]
