"""Sampling a flow model by solving its ODE.

Flow Matching Guide and Code (Lipman et al., 2024), section 3.1 (eq. 3.5 / algorithm 1):
samples of p_1 are X_1 where dX_t/dt = u_t(X_t) and X_0 ~ p_0. Solving backwards (a descending
time grid) maps data to noise. A refiner (the Flow Divergence Sampler, `flowjax.solvers.fds`)
may move the state before every fixed step.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp

from flowjax.solvers.integrate import Dynamics, Refinement, integrate


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
    velocity_fn: Callable[..., jax.Array],
    x_init: jax.Array,
    *,
    method: str = "euler",
    step_size: float | None = None,
    time_grid: Any = (0.0, 1.0),
    return_intermediates: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    refiner: Refiner | None = None,
    key: jax.Array | None = None,
    return_nfe: bool = False,
    **model_kwargs: Any,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Integrates dx/dt = velocity_fn(x, t, **model_kwargs) over `time_grid`.

    Args:
      velocity_fn: the velocity field, called with the whole state x (any shape, usually
        (B, *event)) and a scalar t of the state's dtype.
      x_init: the state at time_grid[0], floating point of any shape.
      method: "euler", "midpoint", "heun", "rk4" (fixed step, one compiled `lax.scan`), or
        "dopri5", "tsit5" (adaptive, diffrax).
      step_size: fixed-step size; None takes one step per interval of `time_grid`. For the
        adaptive methods, the initial step (None: chosen automatically).
      time_grid: >= 2 strictly ascending or descending times in [0, 1], known at trace time.
      return_intermediates: return the states at every time of `time_grid`, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      atol, rtol: tolerances of the adaptive methods.
      refiner: moves the state before every fixed step, inside the same compiled loop (e.g.
        `FlowDivergenceSampler(...)`); None samples plainly.
      key: PRNG key of the refiner's randomness.
      return_nfe: also return the number of velocity evaluations of the solve (an int32
        scalar; a refiner's own model calls are not counted), as the pair (x, nfe).
      **model_kwargs: passed to velocity_fn at every call (e.g. class labels).

    Returns:
      The state at time_grid[-1], or the stacked states at every grid time (and the NFE with
      `return_nfe`).
    """
    x_init = jnp.asarray(x_init)

    def dynamics(t, x):
        return velocity_fn(x, t, **model_kwargs)

    refine = (
        None
        if refiner is None
        else refiner.refinement(dynamics, x_init, method=method, time_grid=time_grid, key=key)
    )
    return integrate(
        dynamics,
        x_init,
        time_grid,
        method=method,
        step_size=step_size,
        return_intermediates=return_intermediates,
        atol=atol,
        rtol=rtol,
        refine=refine,
        return_nfe=return_nfe,
    )
