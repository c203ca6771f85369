"""Affine conditional probability paths and the parameterisation conversions.

Flow Matching Guide and Code (Lipman et al., 2024), section 4.8: the conditional flow
psi_t(x_0 | x_1) = alpha_t x_1 + sigma_t x_0 (eq. 4.60) with conditional velocity
dx_t = d_alpha_t x_1 + d_sigma_t x_0 (eq. 4.61). The marginal velocity can equally be
predicted as the data ("target", x_1-prediction) or the noise ("epsilon", x_0-prediction);
eqs. 4.65-4.67 convert between the three.

Time convention: t = 0 is the source, t = 1 the data. `sample` takes t of shape (B,) with B
the leading dimension of x_0 and x_1, whose event shape is arbitrary.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Shaped

from flowjax._checks import (
    check_batch_time,
    check_floating,
    check_regular,
    check_same_shape,
    check_time,
    check_unit_interval,
)
from flowjax.paths.schedulers import CondOTScheduler, Scheduler, SchedulerOutput


class PathSample(NamedTuple):
    """A draw from a conditional path: the endpoints, t, x_t and its velocity dx_t/dt."""

    x_0: Float[Array, "B *event"]
    x_1: Float[Array, "B *event"]
    t: Float[Array, "B"]
    x_t: Float[Array, "B *event"]
    dx_t: Float[Array, "B *event"]


def expand_time(
    t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "*shape"],
    x: Shaped[Array, "B *event"],
) -> Float[Array, "B *#event"] | Float[Array, "*shape"]:
    """Reshapes a per-sample `t` of shape (B,) to (B, 1, ..., 1) so it broadcasts against `x`.

    Any other `t` (a scalar, or an array already broadcastable to x) is returned unchanged.
    """
    t = jnp.asarray(t)
    if t.ndim == 1 and x.ndim > 1 and t.shape[0] == x.shape[0]:
        return t.reshape(t.shape + (1,) * (x.ndim - 1))
    return t


@dataclasses.dataclass(frozen=True)
class AffineProbPath:
    """x_t = alpha_t x_1 + sigma_t x_0 for a scheduler (alpha_t, sigma_t)."""

    scheduler: Scheduler

    def sample(
        self, x_0: Float[Array, "B *event"], x_1: Float[Array, "B *event"], t: Float[Array, "B"]
    ) -> PathSample:
        """Draws x_t and dx_t on the conditional path for each (x_0, x_1, t) in the batch.

        Args:
          x_0: source samples, shape (B, *event).
          x_1: data samples, shape (B, *event).
          t: times in [0, 1], shape (B,).
        """
        x_0, x_1, t = jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t)
        check_floating(x_0, "x_0")
        check_floating(x_1, "x_1")
        check_same_shape(x_0, x_1, "x_0", "x_1")
        check_batch_time(t, x_1, "x_1")
        check_unit_interval(t)
        s = self._schedule(t, x_1)
        check_regular(t, f"The path of {self.scheduler!r}", finite=s)
        x_t = s.alpha_t * x_1 + s.sigma_t * x_0
        dx_t = s.d_alpha_t * x_1 + s.d_sigma_t * x_0
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)

    def _schedule(self, t: Array, x: Array) -> SchedulerOutput:
        return self.scheduler(expand_time(t, x))

    def _conversion_schedule(
        self, t: Array, x_t: Array, conversion: str, divisor: str
    ) -> SchedulerOutput:
        """The schedule at t for a conversion that divides by `divisor` ("sigma_t", "alpha_t" or
        "d_alpha_t sigma_t - d_sigma_t alpha_t"): a concrete t outside [0, 1], or one where the
        divisor is 0 or the schedule is not finite (sigma_1 = 0 for target_to_velocity), raises
        a ValueError."""
        t = jnp.asarray(t)
        check_time(t, x_t, "x_t")
        check_unit_interval(t)
        out = self._schedule(t, x_t)
        a, s, da, ds = out
        value = s if divisor == "sigma_t" else a if divisor == "alpha_t" else da * s - ds * a
        what = f"{conversion} (which divides by {divisor}) for {self.scheduler!r}"
        check_regular(t, what, finite=out, nonzero=(value,))
        return out

    # Conversions between velocity, target (x_1) and epsilon (x_0) predictions. `t` is of shape
    # (B,) or broadcastable to x_t.

    def target_to_velocity(
        self,
        x_1: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """v = (d_sigma/sigma) x_t + ((d_alpha sigma - d_sigma alpha)/sigma) x_1."""
        a, s, da, ds = self._conversion_schedule(t, x_t, "target_to_velocity", "sigma_t")
        return (ds / s) * x_t + ((da * s - ds * a) / s) * x_1

    def epsilon_to_velocity(
        self,
        epsilon: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """v = (d_alpha/alpha) x_t + ((d_sigma alpha - d_alpha sigma)/alpha) epsilon."""
        a, s, da, ds = self._conversion_schedule(t, x_t, "epsilon_to_velocity", "alpha_t")
        return (da / a) * x_t + ((ds * a - da * s) / a) * epsilon

    def velocity_to_target(
        self,
        velocity: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """x_1 = (sigma v - d_sigma x_t) / (d_alpha sigma - d_sigma alpha)."""
        a, s, da, ds = self._conversion_schedule(
            t, x_t, "velocity_to_target", "d_alpha_t sigma_t - d_sigma_t alpha_t"
        )
        return (s * velocity - ds * x_t) / (da * s - ds * a)

    def epsilon_to_target(
        self,
        epsilon: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """x_1 = (x_t - sigma epsilon) / alpha."""
        a, s, _, _ = self._conversion_schedule(t, x_t, "epsilon_to_target", "alpha_t")
        return (x_t - s * epsilon) / a

    def velocity_to_epsilon(
        self,
        velocity: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """epsilon = (alpha v - d_alpha x_t) / (d_sigma alpha - d_alpha sigma)."""
        a, s, da, ds = self._conversion_schedule(
            t, x_t, "velocity_to_epsilon", "d_alpha_t sigma_t - d_sigma_t alpha_t"
        )
        return (a * velocity - da * x_t) / (ds * a - da * s)

    def target_to_epsilon(
        self,
        x_1: Float[Array, "B *event"],
        x_t: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"] | Float[Array, "B *#event"],
    ) -> Float[Array, "B *event"]:
        """epsilon = (x_t - alpha x_1) / sigma."""
        a, s, _, _ = self._conversion_schedule(t, x_t, "target_to_epsilon", "sigma_t")
        return (x_t - a * x_1) / s


def CondOTProbPath() -> AffineProbPath:  # noqa: N802 (the name users know)
    """The conditional-OT path x_t = t x_1 + (1 - t) x_0, dx_t = x_1 - x_0."""
    return AffineProbPath(CondOTScheduler())
