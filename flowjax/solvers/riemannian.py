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

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax._checks import check_floating, check_output_shape
from flowjax.manifolds import Manifold, check_points
from flowjax.solvers.integrate import FIXED_STEP_METHODS, Update, integrate
from flowjax.solvers.likelihood import ode_log_likelihood
from flowjax.solvers.settings import SolverSettings, split_settings

RIEMANNIAN_METHODS = tuple(FIXED_STEP_METHODS)
"""The methods of the manifold solvers: euler, midpoint, heun, rk4."""

MANIFOLD_UPDATES = ("project", "expmap")
"""How a step moves a point by h k on the manifold (see the module docstring)."""


def _check_method(settings: SolverSettings, name: str) -> None:
    if settings.method not in RIEMANNIAN_METHODS:
        raise ValueError(
            f"{name} needs a fixed-step method ({', '.join(RIEMANNIAN_METHODS)}); got "
            f"{settings.method!r}. Adaptive diffrax methods step in the ambient space and would "
            "leave the manifold."
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
    velocity_fn: Callable[..., Array],
    x_init: Float[Array, "B *points d"],
    manifold: Manifold,
    *,
    solver: SolverSettings | None = None,
    projx: bool = True,
    proju: bool = True,
    update: str = "project",
    return_intermediates: bool = False,
    **kwargs: Any,
) -> Float[Array, "B *points d"] | Float[Array, "T B *points d"]:
    """Integrates dx/dt = velocity_fn(x, t, **model_kwargs) on `manifold` over the time grid.

    Args:
      velocity_fn: the velocity field, called with the whole state x (B, ..., ambient_dim) and a
        scalar t; its output is projected onto T_x M when `proju`.
      x_init: points of the manifold at the first grid time, shape (B, ..., ambient_dim).
        Concrete values are checked (a point off the manifold raises a ValueError); they are
        not moved.
      manifold: a `flowjax.manifolds.Manifold`.
      solver: the `SolverSettings`: a fixed-step method ("euler", "midpoint", "heun", "rk4"),
        its step (None: one step per interval of the grid) and the time grid (default (0, 1)).
      projx: project every new state onto the manifold.
      proju: project every velocity onto the tangent space at its point.
      update: "project" (x + h k, then projx) or "expmap" (exp_x(h k)).
      return_intermediates: return the states at every grid time, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      **kwargs: fields of `SolverSettings` replacing those of `solver` (method, step_size,
        time_grid); the others are passed to velocity_fn at every call (e.g. class labels).

    Returns:
      The state at the last grid time, or the stacked states at every grid time.
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    _check_method(settings, "riemannian_sample")
    x_init = jnp.asarray(x_init)
    check_floating(x_init, "x_init")
    check_points(manifold, x_init, "x_init")

    def velocity(t: Array, x: Array) -> Array:
        u = velocity_fn(x, t, **model_kwargs)
        check_output_shape(u, x, "velocity_fn")
        return manifold.proju(x, u) if proju else u

    return integrate(
        velocity,
        x_init,
        settings.replace(time_grid=settings.grid((0.0, 1.0))),
        return_intermediates=return_intermediates,
        update=manifold_update(manifold, update, projx),
    )


def riemannian_log_likelihood(
    velocity_fn: Callable[..., Array],
    x_1: Float[Array, "B *points d"],
    manifold: Manifold,
    *,
    solver: SolverSettings | None = None,
    update: str = "project",
    return_intermediates: bool = False,
    key: jax.Array | None = None,
    **kwargs: Any,
) -> tuple[Float[Array, "B *points d"] | Float[Array, "T B *points d"], Float[Array, "B"]]:
    """log p_1(x_1) of the flow of `velocity_fn` on `manifold` from its base distribution.

    The density is w.r.t. the Riemannian volume (uniform on the sphere and the torus: 1/(4 pi)
    on S^2, 1/(2 pi)^2 on T^2). The velocity is always taken tangent (F of the module
    docstring) and every state is kept on the manifold.

    Args:
      velocity_fn: u(x, t, **model_kwargs) with a scalar t.
      x_1: points of the manifold, shape (B, ..., ambient_dim); concrete values are checked and
        projected like the inputs of `flowjax.paths.GeodesicProbPath.sample`.
      manifold: a `flowjax.manifolds.Manifold`; its `base_log_prob` is the source density.
      solver: the `SolverSettings`: a fixed-step method, its step, the time grid (descending
        from 1.0 to 0.0, the default) and the divergence ("exact": one forward-mode product per
        ambient coordinate; "hutchinson" with num_probes probes of kind probe drawn from `key`).
      update: as for `riemannian_sample`.
      return_intermediates: return the states at every grid time, stacked, instead of x_0.
      key: PRNG key of the Hutchinson probes.
      **kwargs: fields of `SolverSettings` replacing those of `solver`; the others are passed to
        velocity_fn at every call.

    Returns:
      (x_0, log_p1): the source point of each sample (or all intermediates) and log p_1(x_1),
      shape (B,).
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    _check_method(settings, "riemannian_log_likelihood")
    x_1 = jnp.asarray(x_1)
    check_floating(x_1, "x_1")
    check_points(manifold, x_1, "x_1")
    if x_1.ndim < 2:
        raise ValueError(
            f"riemannian_log_likelihood needs a batch of points (B, ..., {manifold.ambient_dim}), "
            f"got x_1.shape={x_1.shape}."
        )
    move = manifold_update(manifold, update, projx=True)

    def tangent_field(x: Array, t: Array, **model_kwargs: Any) -> Array:
        on_manifold = manifold.projx(x)
        return manifold.proju(on_manifold, velocity_fn(on_manifold, t, **model_kwargs))

    def base_log_prob(x: Array) -> Array:
        log_p = manifold.base_log_prob(x)
        return log_p.reshape(log_p.shape[0], math.prod(log_p.shape[1:])).sum(axis=1)

    def move_state(h, dy, y):
        (x, log_det), (u, div) = y, dy
        return move(h, u, x), log_det + (h * div).astype(log_det.dtype)

    return ode_log_likelihood(
        tangent_field,
        manifold.projx(x_1),
        base_log_prob,
        solver=settings,
        return_intermediates=return_intermediates,
        key=key,
        update=move_state,
        **model_kwargs,
    )
