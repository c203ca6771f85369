"""Kinetic-optimal velocities of any discrete path, divergence-free velocities, and the
kinetic-optimal mixture scheduler.

Shaul et al. (2024), "Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective".
For a probability path p_t over a finite state space (here: one token's vocabulary [V]) and
positive weights tau_t (by default tau_t = p_t), the velocity of least symmetric kinetic energy
that generates p_t is

    u_t(x, z) = [tau_t(z) pdot_t(x) - tau_t(x) pdot_t(z)]_+ / (p_t(z) sum_y tau_t(y)),   x != z,

with u_t(z, z) = -sum_{x != z} u_t(x, z). It satisfies the continuity (Kolmogorov forward)
equation pdot_t(x) = sum_z u_t(x, z) p_t(z) for every path: the flux
j(x, z) = (tau(z) pdot(x) - tau(x) pdot(z)) / sum_y tau(y) is antisymmetric, u(x, z) p(z) =
[j(x, z)]_+, and sum_z j(x, z) = pdot(x) because sum_z pdot(z) = 0. `kinetic_optimal_velocity`
takes p_t as a function of t and obtains pdot_t by forward-mode differentiation (`jax.jvp`), so
any conditional path written in JAX gets a velocity. With tau = p it reduces, on a mixture path,
to kappa'/(1 - kappa) (delta_{x_1} - delta_z) and, on a metric-induced path, to the closed form
of `flowjax.paths.MetricInducedProbPath`.

Divergence-free (probability-preserving) velocities leave p_t unchanged when added to a velocity
that generates it: `divergence_free_velocity(p)` is v(x, z) = p(x) for x != z, a jump to a fresh
draw of p, which satisfies detailed balance v(x, z) p(z) = v(z, x) p(x).

Kinetic-optimal mixture paths: with tau = p, sum_x pdot_t(x)^2 / p_t(x) = 4 |d sqrt(p_t)/dt|^2,
so the least-energy path from p_0 to delta_{x_1} moves sqrt(p_t) along the great circle of the
unit sphere between sqrt(p_0) and delta_{x_1}. That path is again a mixture path, with

    kappa_t = 1 - sin^2((1 - t) W) / sin^2(W),   W = arccos sqrt(p_0(x_1)),

(`KineticOptimalScheduler`), and its energy int_0^1 sum_x pdot_t(x)^2 / p_t(x) dt is 4 W^2: pi^2
for a mask source (p_0(x_1) = 0, kappa_t = sin^2(pi t / 2)).

Rate matrices here have shape (..., V, V) with `rates[..., x, z]` the rate from z to x (columns
sum to zero); probability vectors have shape (..., V).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from flowjax._checks import concrete_value
from flowjax.paths.discrete import DiscreteSource
from flowjax.paths.schedulers import ConvexScheduler, SchedulerOutput


def _set_exit_rates(off_diagonal: Array) -> Array:
    """A rate matrix (..., V, V) from its off-diagonal part: u(z, z) = -sum_{x != z} u(x, z)."""
    eye = jnp.eye(off_diagonal.shape[-1], dtype=bool)
    off_diagonal = jnp.where(eye, 0.0, off_diagonal)
    return off_diagonal - eye * off_diagonal.sum(axis=-2, keepdims=True)


def kinetic_optimal_rates(
    p: Float[Array, "*shape V"],
    dp: Float[Array, "*shape V"],
    weights: Float[Array, "*shape V"] | None = None,
) -> Float[Array, "*shape V V"]:
    """The kinetic-optimal rate matrix of a path at one time, from p_t and its derivative.

    Args:
      p: p_t, shape (..., V).
      dp: d p_t / dt, shape (..., V).
      weights: tau_t > 0, shape (..., V); None for tau = p.

    Returns:
      u_t of shape (..., V, V), `u[..., x, z]` the rate from z to x. Rates out of states of
      zero probability (where they are not determined by the path) are 0.
    """
    p, dp = jnp.asarray(p), jnp.asarray(dp)
    weights = None if weights is None else jnp.asarray(weights)
    _check_vectors(p=p, dp=dp, **({} if weights is None else {"weights": weights}))
    value = None if weights is None else concrete_value(weights)
    if value is not None and value.size and not np.all(value > 0):
        raise ValueError(f"weights (tau_t) must be > 0, got {value}.")
    tau = p if weights is None else weights
    flux = tau[..., None, :] * dp[..., :, None] - tau[..., :, None] * dp[..., None, :]
    flux = flux / tau.sum(axis=-1)[..., None, None]
    p_from = p[..., None, :]
    occupied = p_from > 0
    rates = jnp.where(occupied, jax.nn.relu(flux) / jnp.where(occupied, p_from, 1.0), 0.0)
    return _set_exit_rates(rates)


def kinetic_optimal_velocity(
    prob_fn: Callable[[Array], Array],
    t: Float[Array, "..."],
    *,
    weights_fn: Callable[[Array], Array] | None = None,
) -> Float[Array, "*shape V V"]:
    """The kinetic-optimal velocity of the path t -> prob_fn(t) at time t.

    Args:
      prob_fn: t -> p_t of shape (..., V), differentiable in t (e.g.
        `lambda t: path.probs(x_1, t)` for a conditional path).
      t: the time, a float array of the shape prob_fn accepts.
      weights_fn: t -> tau_t > 0 of shape (..., V); None for tau = p.

    Returns:
      u_t of shape (..., V, V), `u[..., x, z]` the rate from z to x.
    """
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    p, dp = jax.jvp(prob_fn, (t,), (jnp.ones_like(t),))
    weights = None if weights_fn is None else weights_fn(t)
    return kinetic_optimal_rates(p, dp, weights)


def divergence_free_velocity(p: Float[Array, "*shape V"]) -> Float[Array, "*shape V V"]:
    """v(x, z) = p(x) for x != z: rates that preserve p (detailed balance), shape (..., V, V)."""
    p = jnp.asarray(p)
    _check_vectors(p=p)
    return _set_exit_rates(jnp.broadcast_to(p[..., :, None], p.shape + p.shape[-1:]))


def continuity_residual(
    rates: Float[Array, "*shape V V"], p: Float[Array, "*shape V"], dp: Float[Array, "*shape V"]
) -> Float[Array, "*shape V"]:
    """dp(x) - sum_z rates(x, z) p(z), shape (..., V): zero iff `rates` generate the path."""
    rates, p, dp = jnp.asarray(rates), jnp.asarray(p), jnp.asarray(dp)
    _check_vectors(p=p, dp=dp)
    if rates.shape != p.shape + p.shape[-1:]:
        raise ValueError(
            f"rates must have shape p.shape + (V,) = {p.shape + p.shape[-1:]}, got {rates.shape}."
        )
    return dp - jnp.einsum("...xz,...z->...x", rates, p)


def _check_vectors(**vectors: Array) -> None:
    """Probability-path vectors (..., V), V >= 1, all of one shape."""
    shapes = {name: jnp.shape(v) for name, v in vectors.items()}
    for name, shape in shapes.items():
        if len(shape) == 0 or shape[-1] == 0:
            raise ValueError(f"{name} must have shape (..., V), V >= 1, got {name}.shape={shape}.")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{', '.join(shapes)} must have one shape (..., V); got {shapes}.")


@dataclasses.dataclass(frozen=True)
class KineticOptimalScheduler(ConvexScheduler):
    """kappa_t = 1 - sin^2((1 - t) W) / sin^2(W), W = arccos sqrt(target_source_prob).

    The kinetic-optimal mixture path for a source with p_0(x_1) = target_source_prob for every
    data token x_1: 0 for a mask source (kappa_t = sin^2(pi t / 2)), 1/V for a uniform one
    (`for_source` reads it off the source). A source whose p_0(x_1) varies with x_1 has a
    kinetic-optimal path with a different kappa per token; its velocity is available through
    `kinetic_optimal_velocity`.
    """

    target_source_prob: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.target_source_prob < 1.0:
            raise ValueError(
                "KineticOptimalScheduler needs 0 <= target_source_prob < 1 (p_0 of the data "
                f"tokens), got {self.target_source_prob!r}."
            )

    @classmethod
    def for_source(cls, source: DiscreteSource) -> KineticOptimalScheduler:
        prob = source.constant_target_prob
        if prob is None:
            raise ValueError(
                f"{type(source).__name__} gives the data tokens different source probabilities, "
                "so its kinetic-optimal mixture path has a kappa per token; use a mask or uniform "
                "source, or kinetic_optimal_velocity on the path's p_t."
            )
        return cls(target_source_prob=prob)

    @property
    def angle(self) -> float:
        """W = arccos sqrt(p_0(x_1)), the angle between sqrt(p_0) and delta_{x_1}."""
        return math.acos(math.sqrt(self.target_source_prob))

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        w = self.angle
        sin2_w = math.sin(w) ** 2
        sigma = jnp.sin((1.0 - t) * w) ** 2 / sin2_w  # 1 - kappa, exact near t = 1
        d_kappa = w * jnp.sin(2.0 * (1.0 - t) * w) / sin2_w
        return SchedulerOutput(1.0 - sigma, sigma, d_kappa, -d_kappa)

    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        w = self.angle
        return 1.0 - jnp.arcsin(math.sin(w) * jnp.sqrt(1.0 - jnp.asarray(kappa))) / w
