"""Sampling a flow model by solving its ODE.

Flow Matching Guide and Code (Lipman et al., 2024), section 3.1 (eq. 3.5 / algorithm 1):
samples of p_1 are X_1 where dX_t/dt = u_t(X_t) and X_0 ~ p_0. Solving backwards (a descending
time grid) maps data to noise. A refiner (the Flow Divergence Sampler, `flowjax.solvers.fds`)
may move the state before every fixed step. `ode_predict` solves the same ODE between the
encoder and decoder of a neural ODE on paired data.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flowjax._checks import check_floating, check_output_shape
from flowjax.solvers.integrate import Dynamics, Refinement, integrate
from flowjax.solvers.settings import SolverSettings, split_settings


class Refiner(Protocol):
    """Builds the `Refinement` of one solve (e.g. `flowjax.solvers.FlowDivergenceSampler`)."""

    def refinement(
        self,
        dynamics: Dynamics,
        x_init: jax.Array,
        *,
        method: str,
        time_grid: Any,
        key: jax.Array | None,
    ) -> Refinement: ...


def ode_sample(
    velocity_fn: Callable[..., Array],
    x_init: Float[Array, "*shape"],
    *,
    solver: SolverSettings | None = None,
    return_intermediates: bool = False,
    refiner: Refiner | None = None,
    key: jax.Array | None = None,
    return_nfe: bool = False,
    **kwargs: Any,
) -> Float[Array, "*shape"] | Float[Array, "T *shape"] | tuple[Array, Int[Array, ""]]:
    """Integrates dx/dt = velocity_fn(x, t, **model_kwargs) over the solver's time grid.

    Args:
      velocity_fn: the velocity field, called with the whole state x (any shape, usually
        (B, *event)) and a scalar t of the state's dtype.
      x_init: the state at the first time of the grid, floating point of any shape.
      solver: the `SolverSettings` (method, step_size, time_grid, atol, rtol, ...); default
        Euler with one step per interval of the grid (0, 1). Descending grids map data to noise.
      return_intermediates: return the states at every time of the grid, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      refiner: moves the state before every fixed step, inside the same compiled loop (e.g.
        `FlowDivergenceSampler(...)`); None samples plainly.
      key: PRNG key of the refiner's randomness.
      return_nfe: also return the number of velocity evaluations of the solve (an int32
        scalar; a refiner's own model calls are not counted), as the pair (x, nfe).
      **kwargs: fields of `SolverSettings` replacing those of `solver` (e.g. method="midpoint",
        step_size=0.05); the others are passed to velocity_fn at every call (e.g. labels).

    Returns:
      The state at the last grid time, or the stacked states at every grid time (and the NFE
      with `return_nfe`).
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    settings = settings.replace(time_grid=settings.grid((0.0, 1.0)))
    x_init = jnp.asarray(x_init)
    check_floating(x_init, "x_init")

    def dynamics(t, x):
        velocity = velocity_fn(x, t, **model_kwargs)
        check_output_shape(velocity, x, "velocity_fn")
        return velocity

    refine = (
        None
        if refiner is None
        else refiner.refinement(
            dynamics, x_init, method=settings.method, time_grid=settings.time_grid, key=key
        )
    )
    return integrate(
        dynamics,
        x_init,
        settings,
        return_intermediates=return_intermediates,
        refine=refine,
        return_nfe=return_nfe,
    )


class PairedFlow(Protocol):
    """A neural ODE between paired spaces (`flowjax.models.SimFreeNODE`): an input encoder, a
    velocity on the embedding and a decoder to the targets."""

    def encode(self, x: Array) -> Array: ...

    def decode(self, z: Array) -> Array: ...

    def __call__(self, z: Array, t: Array) -> Array: ...


def ode_predict(
    model: PairedFlow,
    x: Float[Array, "B *event"],
    *,
    solver: SolverSettings | None = None,
    return_nfe: bool = False,
    **kwargs: Any,
) -> Float[Array, "B K"] | Float[Array, "T B K"] | tuple[Array, Int[Array, ""]]:
    """y_hat = h(z(1)) with dz/dt = v(z, t) from z(0) = f(x), for a neural ODE on paired data
    (Kim et al., 2024, "Simulation-Free Training of Neural ODEs on Paired Data", section 4):
    (B, *event) -> (B, K) with f = model.encode, v = model, h = model.decode.

    The solve is `ode_sample`'s with `solver` and the settings in `kwargs` (e.g. method="euler"
    with step_size=None takes one step per interval of the grid; "dopri5" is adaptive with
    tolerances atol, rtol). A grid of more than two times gives the decoded states h(z(t)) at its
    times, shape (len(time_grid), B, K). With `return_nfe`, also the number of velocity
    evaluations of the solve.
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    if model_kwargs:
        raise TypeError(f"ode_predict got unexpected keyword arguments {sorted(model_kwargs)}.")
    grid = settings.grid((0.0, 1.0))
    out = ode_sample(
        model,
        model.encode(x),
        solver=settings.replace(time_grid=grid),
        return_intermediates=len(grid) > 2,
        return_nfe=return_nfe,
    )
    z, nfe = out if return_nfe else (out, None)
    y = jax.vmap(model.decode)(z) if z.ndim == 3 else model.decode(z)
    return (y, nfe) if return_nfe else y
