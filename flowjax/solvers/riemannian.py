"""Sampling and log-likelihoods of flows on Riemannian manifolds.

Flow Matching on General Geometries (Chen & Lipman, 2024), sections 2 and 3, and Flow Matching
Guide and Code (Lipman et al., 2024), section 5: a velocity field u_t(x) in T_x M generates the
flow dx/dt = u_t(x) on M, and along it (the instantaneous change of variables on a manifold)

    d/dt log p_t(x_t) = -div_g u_t(x_t),   so   log p_1(x_1) = log p_0(x_0) - int_0^1 div_g u_t dt,

with densities w.r.t. the Riemannian volume and div_g the Riemannian divergence.

Integration. The fixed-step Runge-Kutta methods of `flowjax.solvers.integrate` (euler,
midpoint, heun, rk4), with the same time grid and step logic (any grid, ascending or
descending, starting anywhere in [0, 1]; intermediates are solver states at the grid's times),
with every y + h k of a stage or step replaced by a move on the manifold:

    update="project":  x (+) h k = projx(x + h k)            (projection retraction)
    update="expmap":   x (+) h k = exp_x(h proju_x(k))       (exponential-map step)

With `proju=True` every evaluation of the model is projected onto the tangent space at its point,
with `projx=True` every new state is projected onto the manifold (so the state satisfies the
manifold's constraint to rounding at every step).

The tangent extension. Each manifold's `projx` has the orthogonal tangent projection as its
differential on M, so F(x) = proju_{pi(x)}(u(pi(x))), pi = projx, is a field on the ambient
space that equals u on M, is tangent to M there, and is constant along normal directions
(sphere: F is 0-homogeneous, its flow keeps every sphere |x| = r).

Divergence. The ambient divergence Tr(dF/dx) at x in M equals div_g u(x): tangent directions see
the intrinsic derivative and normal ones contribute nothing. For the flat torus and Euclidean
space it is the ordinary divergence. F's divergence is taken by `flowjax.solvers.divergence`
(exact or Hutchinson), so the likelihood is `ode_log_likelihood` of F with the manifold step
above and the manifold's base density.

Order. With projected steps (and projx, proju) a method is the ambient Runge-Kutta method
applied to F followed by a projection, so it keeps its order (rk4 on a sphere flow with a closed
form, step 0.05: error 3e-7). With exponential-map steps, euler is the geodesic Euler method,
but a multi-stage method combines stage velocities from different tangent spaces at x, which
costs it its order beyond 2 (the same rk4 run: error 2.6e-4); prefer update="project" for
midpoint, heun and rk4.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from flowjax.manifolds import Manifold, check_points
from flowjax.solvers.integrate import FIXED_STEP_METHODS, Update, integrate
from flowjax.solvers.likelihood import ode_log_likelihood

RIEMANNIAN_METHODS = tuple(FIXED_STEP_METHODS)
"""The methods of the manifold solvers: euler, midpoint, heun, rk4."""

MANIFOLD_UPDATES = ("project", "expmap")
"""How a step moves a point by h k on the manifold (see the module docstring)."""


def _check_method(method: str, name: str) -> None:
    if method not in RIEMANNIAN_METHODS:
        raise ValueError(
            f"{name} needs a fixed-step method ({', '.join(RIEMANNIAN_METHODS)}); got "
            f"{method!r}. Adaptive diffrax methods step in the ambient space and would leave "
            "the manifold."
        )


def manifold_update(manifold: Manifold, update: str = "project", projx: bool = True) -> Update:
    """The move x (+) h k of one stage or step, as an `integrate` update (h, k, x) -> x'."""
    if update not in MANIFOLD_UPDATES:
        raise ValueError(f"Unknown manifold update {update!r}; expected one of {MANIFOLD_UPDATES}.")

    def move(h: jax.Array, k: jax.Array, x: jax.Array) -> jax.Array:
        step = (h * k).astype(x.dtype)
        if update == "expmap":
            moved = manifold.expmap(x, manifold.proju(x, step))
        else:
            moved = x + step
        return manifold.projx(moved) if projx else moved

    return move


def riemannian_sample(
    velocity_fn: Callable[..., jax.Array],
    x_init: jax.Array,
    manifold: Manifold,
    *,
    method: str = "euler",
    step_size: float | None = None,
    time_grid: Any = (0.0, 1.0),
    projx: bool = True,
    proju: bool = True,
    update: str = "project",
    return_intermediates: bool = False,
    **model_kwargs: Any,
) -> jax.Array:
    """Integrates dx/dt = velocity_fn(x, t, **model_kwargs) on `manifold` over `time_grid`.

    Args:
      velocity_fn: the velocity field, called with the whole state x (B, ..., ambient_dim) and a
        scalar t; its output is projected onto T_x M when `proju`.
      x_init: points of the manifold at time_grid[0], shape (B, ..., ambient_dim). Concrete
        values are checked (a point off the manifold raises a ValueError); they are not moved.
      manifold: a `flowjax.manifolds.Manifold`.
      method: "euler", "midpoint", "heun" or "rk4".
      step_size: fixed step; None takes one step per interval of `time_grid`.
      time_grid: >= 2 strictly ascending or descending times in [0, 1], known at trace time.
      projx: project every new state onto the manifold.
      proju: project every velocity onto the tangent space at its point.
      update: "project" (x + h k, then projx) or "expmap" (exp_x(h k)).
      return_intermediates: return the states at every time of `time_grid`, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      **model_kwargs: passed to velocity_fn at every call (e.g. class labels).

    Returns:
      The state at time_grid[-1], or the stacked states at every grid time.
    """
    _check_method(method, "riemannian_sample")
    x_init = jnp.asarray(x_init)
    check_points(manifold, x_init, "x_init")

    def velocity(t: jax.Array, x: jax.Array) -> jax.Array:
        u = velocity_fn(x, t, **model_kwargs)
        return manifold.proju(x, u) if proju else u

    return integrate(
        velocity,
        x_init,
        time_grid,
        method=method,
        step_size=step_size,
        return_intermediates=return_intermediates,
        update=manifold_update(manifold, update, projx),
    )


def riemannian_log_likelihood(
    velocity_fn: Callable[..., jax.Array],
    x_1: jax.Array,
    manifold: Manifold,
    *,
    method: str = "euler",
    step_size: float | None = None,
    time_grid: Any = (1.0, 0.0),
    update: str = "project",
    return_intermediates: bool = False,
    exact_divergence: bool = True,
    key: jax.Array | None = None,
    num_probes: int = 1,
    probe: str = "rademacher",
    **model_kwargs: Any,
) -> tuple[jax.Array, jax.Array]:
    """log p_1(x_1) of the flow of `velocity_fn` on `manifold` from its base distribution.

    The density is w.r.t. the Riemannian volume (uniform on the sphere and the torus: 1/(4 pi)
    on S^2, 1/(2 pi)^2 on T^2). The velocity is always taken tangent (F of the module
    docstring) and every state is kept on the manifold.

    Args:
      velocity_fn: u(x, t, **model_kwargs) with a scalar t.
      x_1: points of the manifold, shape (B, ..., ambient_dim); concrete values are checked and
        projected like the inputs of `flowjax.paths.GeodesicProbPath.sample`.
      manifold: a `flowjax.manifolds.Manifold`; its `base_log_prob` is the source density.
      method, step_size, update: as for `riemannian_sample`.
      time_grid: descending from 1.0 to 0.0 (static).
      return_intermediates: return the states at every time of the grid, stacked, instead of x_0.
      exact_divergence: exact trace (one forward-mode product per ambient coordinate), or
        Hutchinson's estimator with `num_probes` probes of kind `probe` drawn from `key`.

    Returns:
      (x_0, log_p1): the source point of each sample (or all intermediates) and log p_1(x_1),
      shape (B,).
    """
    _check_method(method, "riemannian_log_likelihood")
    x_1 = jnp.asarray(x_1)
    check_points(manifold, x_1, "x_1")
    if x_1.ndim < 2:
        raise ValueError(
            f"riemannian_log_likelihood needs a batch of points (B, ..., {manifold.ambient_dim}), "
            f"got x_1.shape={x_1.shape}."
        )
    move = manifold_update(manifold, update, projx=True)

    def tangent_field(x: jax.Array, t: jax.Array, **kwargs: Any) -> jax.Array:
        on_manifold = manifold.projx(x)
        return manifold.proju(on_manifold, velocity_fn(on_manifold, t, **kwargs))

    def base_log_prob(x: jax.Array) -> jax.Array:
        return manifold.base_log_prob(x).reshape(x.shape[0], -1).sum(axis=1)

    def move_state(h, dy, y):
        (x, log_det), (u, div) = y, dy
        return move(h, u, x), log_det + (h * div).astype(log_det.dtype)

    return ode_log_likelihood(
        tangent_field,
        manifold.projx(x_1),
        base_log_prob,
        method=method,
        step_size=step_size,
        time_grid=time_grid,
        return_intermediates=return_intermediates,
        exact_divergence=exact_divergence,
        key=key,
        num_probes=num_probes,
        probe=probe,
        update=move_state,
        **model_kwargs,
    )
