"""Exact log-likelihoods of flow models through the instantaneous change of variables.

Flow Matching Guide and Code (Lipman et al., 2024), section 3.6 (eqs. 3.30-3.32): along
dx/dt = u_t(x), d/dt log p_t(x_t) = -div u_t(x_t). Hence

    log p_1(x_1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt,

computed either backwards from the data (`ode_log_likelihood`: solve [x, l] with
d[x, l]/dt = [u, div u] from t = 1 to 0, l(1) = 0, so log p_1(x_1) = log p_0(x_0) + l(0)) or
along the sampling pass (`ode_sample_with_log_likelihood`: d[x, log p]/dt = [u, -div u] from
t = 0 to 1). Both are differentiable end to end (maximum-likelihood training works) and take
the divergence exactly (any event shape) or by Hutchinson's estimator with probes drawn once
per solve.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.solvers import divergence as div_lib
from flowjax.solvers.integrate import Update, integrate, static_time_grid


def _divergence_dynamics(
    velocity_fn: Callable[..., jax.Array],
    x: jax.Array,
    exact_divergence: bool,
    key: jax.Array | None,
    num_probes: int,
    probe: str,
    model_kwargs: dict[str, Any],
) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """A function (t, x) -> (u_t(x), div u_t(x)) with the chosen divergence estimator."""
    if x.ndim < 2:
        raise ValueError(
            f"The likelihood solvers need a batch of shape (B, *event), got x.shape={x.shape}."
        )
    divergence = div_lib.divergence_estimator(
        x.shape, x.dtype, exact=exact_divergence, key=key, num_probes=num_probes, probe=probe
    )
    return lambda t, y: divergence(lambda z: velocity_fn(z, t, **model_kwargs), y)


def _check_endpoints(time_grid: Any, start: float, end: float, name: str) -> None:
    grid = static_time_grid(time_grid)
    if grid[0] != start or grid[-1] != end:
        raise ValueError(
            f"{name} integrates from t={start:g} to t={end:g}: time_grid must start at {start:g} "
            f"and end at {end:g}, got {grid!r}."
        )


def _check_log_density(log_p: jax.Array, x: jax.Array, name: str) -> None:
    if log_p.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must return one log-density per sample, shape ({x.shape[0]},); "
            f"got {log_p.shape}."
        )


def ode_log_likelihood(
    velocity_fn: Callable[..., jax.Array],
    x_1: jax.Array,
    log_p0: Callable[[jax.Array], jax.Array],
    *,
    method: str = "euler",
    step_size: float | None = None,
    time_grid: Any = (1.0, 0.0),
    return_intermediates: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    exact_divergence: bool = True,
    key: jax.Array | None = None,
    num_probes: int = 1,
    probe: str = "rademacher",
    update: Update | None = None,
    **model_kwargs: Any,
) -> tuple[jax.Array, jax.Array]:
    """log p_1(x_1) of the flow of `velocity_fn` from source density `log_p0`.

    Args:
      velocity_fn: u(x, t, **model_kwargs) with a scalar t.
      x_1: data points, shape (B, *event).
      log_p0: the source log-density, mapping (B, *event) to (B,).
      method, step_size, atol, rtol: as for `ode_sample`.
      time_grid: descending from 1.0 to 0.0 (static).
      return_intermediates: return the states at every time of the grid, stacked, instead of x_0.
      exact_divergence: exact Jacobian trace (D forward-mode products), or Hutchinson.
      key: PRNG key for the Hutchinson probes (required when exact_divergence=False).
      num_probes: Hutchinson probes averaged at every evaluation.
      probe: "rademacher" or "gaussian".
      update: how a fixed step moves the state (x, log-det) by h * (u, div u), as for
        `flowjax.solvers.integrate` (default: y + h dy; `riemannian_log_likelihood` passes a
        step that keeps x on its manifold).

    Returns:
      (x_0, log_p1): the source point of each sample (or all intermediates) and log p_1(x_1),
      shape (B,).
    """
    x_1 = jnp.asarray(x_1)
    _check_endpoints(time_grid, 1.0, 0.0, "ode_log_likelihood")
    field = _divergence_dynamics(
        velocity_fn, x_1, exact_divergence, key, num_probes, probe, model_kwargs
    )
    log_det_init = jnp.zeros(x_1.shape[:1], dtype=x_1.dtype)
    xs, log_det = integrate(
        lambda t, y: field(t, y[0]),
        (x_1, log_det_init),
        time_grid,
        method=method,
        step_size=step_size,
        return_intermediates=return_intermediates,
        atol=atol,
        rtol=rtol,
        update=update,
    )
    x_0 = xs[-1] if return_intermediates else xs
    log_det_end = log_det[-1] if return_intermediates else log_det
    source = log_p0(x_0)
    _check_log_density(source, x_0, "log_p0")
    return xs, source + log_det_end


def ode_sample_with_log_likelihood(
    velocity_fn: Callable[..., jax.Array],
    x_0: jax.Array,
    log_p0: Callable[[jax.Array], jax.Array],
    *,
    method: str = "euler",
    step_size: float | None = None,
    time_grid: Any = (0.0, 1.0),
    return_intermediates: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    exact_divergence: bool = True,
    key: jax.Array | None = None,
    num_probes: int = 1,
    probe: str = "rademacher",
    **model_kwargs: Any,
) -> tuple[jax.Array, jax.Array]:
    """Samples x_1 from x_0 and the model's log p_1(x_1) in the same forward solve.

    Arguments as for `ode_log_likelihood`, except that `x_0` holds source samples and
    `time_grid` ascends from 0.0 to 1.0. Returns (x_1 or the stacked intermediates, log p_1),
    the log-density of shape (B,) (stacked per grid time when return_intermediates=True).
    """
    x_0 = jnp.asarray(x_0)
    _check_endpoints(time_grid, 0.0, 1.0, "ode_sample_with_log_likelihood")
    field = _divergence_dynamics(
        velocity_fn, x_0, exact_divergence, key, num_probes, probe, model_kwargs
    )

    def dynamics(t, y):
        velocity, div = field(t, y[0])
        return velocity, -div

    log_p_init = log_p0(x_0)
    _check_log_density(log_p_init, x_0, "log_p0")
    return integrate(
        dynamics,
        (x_0, log_p_init.astype(x_0.dtype)),
        time_grid,
        method=method,
        step_size=step_size,
        return_intermediates=return_intermediates,
        atol=atol,
        rtol=rtol,
    )


def standard_normal_log_density(x: jax.Array) -> jax.Array:
    """log N(x; 0, I) per sample for x of shape (B, *event): the usual source density."""
    flat = x.reshape(x.shape[0], -1)
    dim = flat.shape[1]
    return -0.5 * jnp.sum(flat**2, axis=1) - 0.5 * dim * np.log(2.0 * np.pi)
