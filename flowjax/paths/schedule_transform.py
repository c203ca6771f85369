"""Changing the scheduler of a trained velocity field without retraining (scale-time transform).

Flow Matching Guide and Code (Lipman et al., 2024), section 4.8.3 (eqs. 4.89-4.91): two affine
paths with the same source and data are related by x_bar_r = s_r x_{t_r}, where t_r matches the
signal-to-noise ratios, t_r = snr^-1(snr_bar(r)), and s_r = sigma_bar_r / sigma_{t_r}. The
velocity for the new scheduler is

    u_bar_r(x) = (s'_r / s_r) x + s_r t'_r u_{t_r}(x / s_r),

with t'_r and s'_r computed here by forward-mode differentiation of r -> (t_r, s_r).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax.paths.affine import expand_time
from flowjax.paths.schedulers import Scheduler


@dataclasses.dataclass(frozen=True)
class ScheduleTransformedModel:
    """A velocity field for `new_scheduler` built from one trained with `original_scheduler`.

    Calling it as `f(x, t, **model_kwargs)` accepts a scalar t or t of shape (B,), like any
    flowjax velocity field, so it can be passed straight to `ode_sample`.
    """

    velocity_fn: Callable[..., Array]
    original_scheduler: Scheduler
    new_scheduler: Scheduler

    def time_and_scale(
        self, r: Float[Array, "*shape"]
    ) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
        """(t_r, s_r): the original time and the scale that match the new scheduler at r."""
        new = self.new_scheduler(r)
        t_r = self.original_scheduler.snr_inverse(new.alpha_t / new.sigma_t)
        s_r = new.sigma_t / self.original_scheduler(t_r).sigma_t
        return t_r, s_r

    def __call__(
        self,
        x: Float[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
        **model_kwargs: Any,
    ) -> Float[Array, "B *event"]:
        r = jnp.asarray(t, dtype=x.dtype)
        (t_r, s_r), (dt_r, ds_r) = jax.jvp(self.time_and_scale, (r,), (jnp.ones_like(r),))
        s = expand_time(s_r, x)
        u = self.velocity_fn(x / s, t_r, **model_kwargs)
        return (expand_time(ds_r, x) / s) * x + s * expand_time(dt_r, x) * u
