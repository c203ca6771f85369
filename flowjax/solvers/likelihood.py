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
from jaxtyping import Array, Float

from flowjax._checks import check_floating, check_output_shape, flat_batch
from flowjax.solvers import divergence as div_lib
from flowjax.solvers.integrate import Update, integrate
from flowjax.solvers.settings import SolverSettings, split_settings


def _divergence_dynamics(
    velocity_fn: Callable[..., Array],
    x: Array,
    settings: SolverSettings,
    key: jax.Array | None,
    model_kwargs: dict[str, Any],
    x_name: str,
) -> Callable[[Array, Array], tuple[Array, Array]]:
    """A function (t, x) -> (u_t(x), div u_t(x)) with the settings' divergence estimator."""
    check_floating(x, x_name)
    if x.ndim < 2:
        raise ValueError(
            f"The likelihood solvers need a batch of shape (B, *event), got {x_name}.shape="
            f"{x.shape}."
        )

    def velocity(z: Array, t: Array) -> Array:
        out = velocity_fn(z, t, **model_kwargs)
        check_output_shape(out, z, "velocity_fn")
        return out

    divergence = div_lib.divergence_estimator(
        x.shape,
        x.dtype,
        exact=settings.exact_divergence,
        key=key,
        num_probes=settings.num_probes,
        probe=settings.probe,
    )
    return lambda t, y: divergence(lambda z: velocity(z, t), y)


def _check_endpoints(grid: tuple[float, ...], start: float, end: float, name: str) -> None:
    if grid[0] != start or grid[-1] != end:
        raise ValueError(
            f"{name} integrates from t={start:g} to t={end:g}: time_grid must start at {start:g} "
            f"and end at {end:g}, got {grid!r}."
        )


def _check_log_density(log_p: Array, x: Array, name: str) -> None:
    if log_p.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must return one log-density per sample, shape ({x.shape[0]},); "
            f"got {log_p.shape}."
        )


def ode_log_likelihood(
    velocity_fn: Callable[..., Array],
    x_1: Float[Array, "B *event"],
    log_p0: Callable[[Array], Array],
    *,
    solver: SolverSettings | None = None,
    return_intermediates: bool = False,
    key: jax.Array | None = None,
    update: Update | None = None,
    **kwargs: Any,
) -> tuple[Float[Array, "B *event"] | Float[Array, "T B *event"], Float[Array, "B"]]:
    """log p_1(x_1) of the flow of `velocity_fn` from source density `log_p0`.

    Args:
      velocity_fn: u(x, t, **model_kwargs) with a scalar t.
      x_1: data points, shape (B, *event).
      log_p0: the source log-density, mapping (B, *event) to (B,).
      solver: the `SolverSettings` (method, step size, tolerances, divergence "exact" or
        "hutchinson" with num_probes probes of kind probe); its time grid must descend from 1.0
        to 0.0 (default (1.0, 0.0)).
      return_intermediates: return the states at every time of the grid, stacked, instead of x_0.
      key: PRNG key for the Hutchinson probes (required with divergence="hutchinson").
      update: how a fixed step moves the state (x, log-det) by h * (u, div u), as for
        `flowjax.solvers.integrate` (default: y + h dy; `riemannian_log_likelihood` passes a
        step that keeps x on its manifold).
      **kwargs: fields of `SolverSettings` replacing those of `solver` (method, step_size,
        exact_divergence, ...); the others are passed to velocity_fn at every call.

    Returns:
      (x_0, log_p1): the source point of each sample (or all intermediates) and log p_1(x_1),
      shape (B,).
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    settings = settings.replace(time_grid=settings.grid((1.0, 0.0)))
    x_1 = jnp.asarray(x_1)
    _check_endpoints(settings.time_grid, 1.0, 0.0, "ode_log_likelihood")
    field = _divergence_dynamics(velocity_fn, x_1, settings, key, model_kwargs, "x_1")
    log_det_init = jnp.zeros(x_1.shape[:1], dtype=x_1.dtype)
    xs, log_det = integrate(
        lambda t, y: field(t, y[0]),
        (x_1, log_det_init),
        settings,
        return_intermediates=return_intermediates,
        update=update,
    )
    x_0 = xs[-1] if return_intermediates else xs
    log_det_end = log_det[-1] if return_intermediates else log_det
    source = log_p0(x_0)
    _check_log_density(source, x_0, "log_p0")
    return xs, source + log_det_end


def ode_sample_with_log_likelihood(
    velocity_fn: Callable[..., Array],
    x_0: Float[Array, "B *event"],
    log_p0: Callable[[Array], Array],
    *,
    solver: SolverSettings | None = None,
    return_intermediates: bool = False,
    key: jax.Array | None = None,
    **kwargs: Any,
) -> tuple[Float[Array, "B *event"] | Float[Array, "T B *event"], Float[Array, "B"] | Array]:
    """Samples x_1 from x_0 and the model's log p_1(x_1) in the same forward solve.

    Arguments as for `ode_log_likelihood`, except that `x_0` holds source samples and the time
    grid ascends from 0.0 to 1.0 (the default). Returns (x_1 or the stacked intermediates,
    log p_1), the log-density of shape (B,) (stacked per grid time when
    return_intermediates=True).
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    settings = settings.replace(time_grid=settings.grid((0.0, 1.0)))
    x_0 = jnp.asarray(x_0)
    _check_endpoints(settings.time_grid, 0.0, 1.0, "ode_sample_with_log_likelihood")
    field = _divergence_dynamics(velocity_fn, x_0, settings, key, model_kwargs, "x_0")

    def dynamics(t, y):
        velocity, div = field(t, y[0])
        return velocity, -div

    log_p_init = log_p0(x_0)
    _check_log_density(log_p_init, x_0, "log_p0")
    return integrate(
        dynamics,
        (x_0, log_p_init.astype(x_0.dtype)),
        settings,
        return_intermediates=return_intermediates,
    )


def standard_normal_log_density(x: Float[Array, "B *event"]) -> Float[Array, "B"]:
    """log N(x; 0, I) per sample for x of shape (B, *event): the usual source density."""
    flat = flat_batch(jnp.asarray(x))
    dim = flat.shape[1]
    return -0.5 * jnp.sum(flat**2, axis=1) - 0.5 * dim * np.log(2.0 * np.pi)
