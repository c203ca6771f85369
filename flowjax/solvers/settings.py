"""Solver settings: how every sampler and likelihood of flowjax steps through time.

One frozen dataclass, `SolverSettings`, holds what a solve needs to know besides the model and
the state: the Runge-Kutta method, the fixed step or the adaptive tolerances, the time grid, and,
for likelihoods, how the divergence is taken (Flow Matching Guide and Code, Lipman et al., 2024,
sections 3.1 and 3.6: dx/dt = u_t(x), d/dt log p_t(x_t) = -div u_t(x_t)). Every solver
(`ode_sample`, `ode_log_likelihood`, `ode_sample_with_log_likelihood`, `riemannian_sample`,
`riemannian_log_likelihood`, `discrete_sample`, `generator_sample`, `ode_predict`, `integrate`)
takes it as `solver=`, and accepts any of its fields as keyword arguments, which replace the
settings' values for that call:

    settings = SolverSettings(method="heun", step_size=0.05)
    x_1 = ode_sample(model, x_0, solver=settings)
    path = ode_sample(model, x_0, solver=settings, time_grid=(0.0, 0.5, 1.0),
                      return_intermediates=True)
    x_1 = ode_sample(model, x_0, method="midpoint", step_size=0.05)   # no settings object

Keyword arguments that are not fields of `SolverSettings` (nor the solver's own arguments) go to
the model at every evaluation (e.g. `label=`), so a model's keyword argument cannot be named like
a field. `exact_divergence=True / False` is accepted as a synonym of `divergence="exact" /
"hutchinson"`.

The trainer builds one `SolverSettings` per config section (`config.sample`, `config.evaluate`)
with `SolverSettings.from_config`, once per run.

Every field is checked when the settings are made, before anything is traced; the time grid is
stored as a tuple of Python floats, so settings are hashable and static under `jax.jit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from flowjax.solvers.divergence import PROBES
from flowjax.solvers.integrate import METHODS, check_method, static_time_grid
from flowjax.solvers.time_grids import edm_time_grid

DIVERGENCES = ("exact", "hutchinson")


@dataclasses.dataclass(frozen=True)
class SolverSettings:
    """How a solve steps from the first time of its grid to the last.

    Attributes:
      method: "euler", "midpoint", "heun", "rk4" (fixed step, one compiled `lax.scan`), or
        "dopri5", "tsit5" (adaptive, diffrax). The CTMC and jump samplers are Euler schemes and
        take only "euler"; the Riemannian solvers take the fixed-step methods.
      step_size: the fixed step; None takes one step per interval of the time grid. For the
        adaptive methods, the initial step (None: chosen automatically).
      time_grid: >= 2 strictly ascending or descending times in [0, 1]; None takes the solver's
        own (0 -> 1 for sampling, 1 -> 0 for likelihoods). Intermediates are returned at its
        times.
      atol, rtol: tolerances of the adaptive methods.
      max_steps: step budget of the adaptive methods.
      divergence: "exact" (the Jacobian trace, one forward-mode product per dimension) or
        "hutchinson" (an unbiased estimate with `num_probes` probes of kind `probe`, drawn once
        per solve from the solver's `key`); used by the likelihoods only.
      num_probes: Hutchinson probes averaged at every evaluation.
      probe: "rademacher" or "gaussian".
    """

    method: str = "euler"
    step_size: float | None = None
    time_grid: tuple[float, ...] | None = None
    atol: float = 1e-5
    rtol: float = 1e-5
    max_steps: int = 16384
    divergence: str = "exact"
    num_probes: int = 1
    probe: str = "rademacher"

    def __post_init__(self):
        check_method(self.method)
        if self.step_size is not None and not _positive_number(self.step_size):
            raise ValueError(
                f"step_size must be positive and finite, or None; got {self.step_size!r}."
            )
        if self.time_grid is not None:
            grid = tuple(float(t) for t in static_time_grid(self.time_grid))
            object.__setattr__(self, "time_grid", grid)
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not _positive_number(value):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}.")
        for name in ("max_steps", "num_probes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if self.divergence not in DIVERGENCES:
            raise ValueError(
                f"divergence must be one of {DIVERGENCES}, got {self.divergence!r}."
            )
        if self.probe not in PROBES:
            raise ValueError(f"Unknown Hutchinson probe {self.probe!r}; expected one of {PROBES}.")

    @property
    def exact_divergence(self) -> bool:
        return self.divergence == "exact"

    def grid(self, default: tuple[float, ...]) -> tuple[float, ...]:
        """The time grid, or `default` (the solver's own direction) when none is set."""
        return default if self.time_grid is None else self.time_grid

    def replace(self, **changes: Any) -> SolverSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SolverSettings:
        """The settings of a config section such as `config.sample` or `config.evaluate`.

        Reads the keys it has among the fields (method, step_size, atol, rtol, divergence,
        num_probes, probe, max_steps) and its time grid: `time_grid="edm"` is the EDM grid of
        `edm_steps` intervals with exponent `edm_rho` (one step per interval), "uniform" (or no
        key) leaves the grid to the solver; a tuple is taken as the grid itself.
        """
        fields = {f.name for f in dataclasses.fields(cls)} - {"time_grid"}
        values = {k: section[k] for k in fields if k in section}
        grid = section.get("time_grid", "uniform")
        if grid == "edm":
            values["step_size"] = None
            values["time_grid"] = edm_time_grid(section["edm_steps"], rho=section["edm_rho"])
        elif grid != "uniform":
            values["time_grid"] = grid
        return cls(**values)


def _positive_number(value: Any) -> bool:
    """Whether `value` is a finite number > 0 (a bool is not a number here)."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
    return number and bool(np.isfinite(value)) and value > 0


def check_euler(settings: SolverSettings, name: str) -> None:
    """The CTMC and jump samplers are Euler schemes: their settings' method must be "euler"."""
    if settings.method != "euler":
        raise ValueError(
            f"{name} steps with Euler's method; got method={settings.method!r}. Set "
            "method='euler' (the default) and choose the step with step_size."
        )


SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(SolverSettings))


def split_settings(
    solver: SolverSettings | None, kwargs: dict[str, Any]
) -> tuple[SolverSettings, dict[str, Any]]:
    """(settings, model keyword arguments) of a solver call.

    `kwargs` holds the call's keyword arguments beyond the solver's own: those named like a
    field of `SolverSettings` (or `exact_divergence`) replace the fields of `solver` (default
    settings when None); the rest are the model's.
    """
    if solver is not None and not isinstance(solver, SolverSettings):
        raise TypeError(
            f"solver must be a flowjax.solvers.SolverSettings or None, got "
            f"{type(solver).__name__}."
        )
    changes = {k: kwargs.pop(k) for k in SETTINGS_FIELDS if k in kwargs}
    if "exact_divergence" in kwargs:
        exact = kwargs.pop("exact_divergence")
        if "divergence" in changes:
            raise TypeError("Pass either divergence= or exact_divergence=, not both.")
        changes["divergence"] = "exact" if exact else "hutchinson"
    settings = solver or SolverSettings()
    return (settings.replace(**changes) if changes else settings), kwargs


__all__ = [
    "DIVERGENCES",
    "METHODS",
    "SETTINGS_FIELDS",
    "SolverSettings",
    "check_euler",
    "split_settings",
]
