"""Flow Divergence Sampler (FDS): training-free refinement of the states of an ODE sampler.

Cha, Yoo, Kim, Park, Kwon and Hong, "Training-Free Refinement of Flow Matching with
Divergence-based Sampling" (arXiv:2604.04646, 2026).

Why the divergence. On the CondOT path x_t = t x_1 + (1 - t) x_0 with x_0 ~ N(0, I) in R^D, the
marginal velocity averages the sample-wise velocities (x_1 - x)/(1 - t) over the data points
x_1 that could have led to x,

    u_t(x) = (x1_hat(x, t) - x) / (1 - t),        x1_hat(x, t) = E[x_1 | x_t = x],

and Tweedie's formula, d x1_hat / dx = t Cov[x_1 | x_t = x] / (1 - t)^2, gives

    div u_t(x) = -D / (1 - t)  +  t Tr Cov[x_1 | x_t = x] / (1 - t)^3.                   (1)

The first term is a floor, -1/(1 - t) per dimension, reached where the x-prediction x1_hat is
locally constant; the excess measures how much the sample-wise velocities disagree at x, i.e.
how likely the averaged velocity is to carry x into a low-density region between the modes
it could still reach. FDS moves each state, before a solver step, towards lower divergence.

The refinement, before each step that starts at a time t <= stop_time, for every sample z:

    candidates   z_k = z + sigma(t) d_k,  d_k ~ N(0, I),  k = 1..K,
                 sigma(t) = scale * (1 - t)             (schedule "linear")
                          = scale * cos(pi t / 2)       (schedule "cosine");
    acceptance   z <- z_k* with k* = argmin_k div F(z_k) if div F(z_k*) < div F(z); with
                 `divergence_floor`, only where div F(z) / D >= -1/(1 - t) (below the floor
                 of (1) the model's divergence is an error of the model, not ambiguity);
    reuse        an accepted d_k* is the first candidate d_1 at the next step.

F is the velocity u_t ("velocity") or the averaged velocity of one solver step,
(step(z) - z) / h ("step"): u_t itself for Euler, 1/2 [u_t(z) + u_{t+h}(z + h u_t(z))] for Heun
(the Heun-averaged velocity), the Runge-Kutta weighted sums for midpoint and rk4. For a locally
constant x-prediction every stage of a step sees the same velocity (x1_hat - z)/(1 - t), so the
floor -1/(1 - t) holds for both choices of F.

The divergence is exact (D forward-mode products) or Hutchinson's estimate with probes drawn
once per solve (`flowjax.solvers.divergence.divergence_estimator`), so a state and its
candidates are compared under the same probe. Randomness: the probes come from one half of
`key`, the directions of step n from `fold_in(other half, n)`.

Cost: each refined step adds K + 1 divergences of F (the state and its K candidates); the
solver step then evaluates the model as usual (`sampling_passes` counts it all).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from flowjax._checks import check_count, check_regular, concrete_value
from flowjax.solvers.divergence import PROBES, divergence_estimator, divergence_passes
from flowjax.solvers.integrate import (
    EVALS_PER_STEP,
    FIXED_STEP_METHODS,
    Dynamics,
    Refinement,
    _axpy,
    check_method,
    static_time_grid,
    step_nodes,
)

SCHEDULES = ("linear", "cosine")
DIVERGENCE_OF = ("velocity", "step")


def x_prediction_floor(t: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """-1/(1 - t): the per-dimension divergence of (x1_hat - x)/(1 - t) for a constant x1_hat."""
    check_regular(t, "x_prediction_floor", nonzero=(1.0 - jnp.asarray(t),))
    return -1.0 / (1.0 - t)


@dataclasses.dataclass(frozen=True)
class FlowDivergenceSampler:
    """The FDS refinement of `ode_sample` (pass it as `refiner=`, with a `key`).

    Attributes:
      scale: perturbation scale s of sigma(t) = s * sched(t) (the paper's 1e-2 is for images;
        0 turns the refinement into a no-op); a Python number or a traced scalar.
      schedule: sched(t), "linear" (1 - t) or "cosine" (cos(pi t / 2)).
      stop_time: states are refined before every step starting at t <= stop_time (< 1).
      num_candidates: K perturbations tried per refined step.
      reuse_accepted: an accepted direction is the first candidate of the next step.
      divergence_floor: refine only samples whose per-dimension divergence is at least
        -1/(1 - t) (for x-prediction models, whose CondOT velocity cannot go below it).
      divergence_of: "velocity" (u_t) or "step" (the solver step's averaged velocity, e.g.
        the Heun-averaged velocity).
      exact_divergence: exact trace; otherwise Hutchinson with `num_probes` fixed probes of kind
        `probe` ("rademacher" or "gaussian").
    """

    scale: float = 1e-2
    schedule: str = "linear"
    stop_time: float = 0.5
    num_candidates: int = 1
    reuse_accepted: bool = True
    divergence_floor: bool = False
    divergence_of: str = "velocity"
    exact_divergence: bool = False
    num_probes: int = 1
    probe: str = "rademacher"

    def __post_init__(self):
        scale = concrete_value(self.scale)  # None when traced (e.g. a jitted scale sweep)
        if scale is not None and not (np.isfinite(scale) and scale >= 0.0):
            raise ValueError(f"scale must be finite and >= 0, got {self.scale!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}; expected one of {SCHEDULES}.")
        if not 0.0 <= self.stop_time < 1.0:
            raise ValueError(f"stop_time must lie in [0, 1), got {self.stop_time!r}.")
        check_count(self.num_candidates, "num_candidates", minimum=1)
        if self.divergence_of not in DIVERGENCE_OF:
            raise ValueError(
                f"Unknown divergence_of {self.divergence_of!r}; expected one of {DIVERGENCE_OF}."
            )
        if self.probe not in PROBES:
            raise ValueError(f"Unknown Hutchinson probe {self.probe!r}; expected one of {PROBES}.")
        check_count(self.num_probes, "num_probes", minimum=1)

    def perturbation_scale(self, t: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """sigma(t) = scale * sched(t)."""
        sched = 1.0 - t if self.schedule == "linear" else jnp.cos(0.5 * jnp.pi * t)
        return self.scale * sched

    def refinement(
        self,
        dynamics: Dynamics,
        x_init: Float[Array, "B *event"],
        *,
        method: str,
        time_grid: Any,
        key: jax.Array | None,
    ) -> Refinement:
        """The refinement of the solve of dx/dt = dynamics(t, x) from x_init (B, *event)."""
        if key is None:
            raise ValueError("The Flow Divergence Sampler needs a `key` for its perturbations.")
        if x_init.ndim < 2:
            raise ValueError(
                f"The Flow Divergence Sampler needs a batch of shape (B, *event), got "
                f"x_init.shape={x_init.shape}."
            )
        check_method(method)
        if method not in FIXED_STEP_METHODS:
            raise ValueError(
                f"The Flow Divergence Sampler refines fixed steps; use one of "
                f"{', '.join(FIXED_STEP_METHODS)}, not {method!r}."
            )
        grid = static_time_grid(time_grid)
        if grid[-1] < grid[0]:
            raise ValueError(
                f"The Flow Divergence Sampler refines samples from noise (t = 0) towards data "
                f"(t = 1): time_grid must ascend, got {grid!r}."
            )
        probe_key, direction_key = jax.random.split(key)
        divergence = divergence_estimator(
            x_init.shape,
            x_init.dtype,
            exact=self.exact_divergence,
            key=probe_key,
            num_probes=self.num_probes,
            probe=self.probe,
        )
        event_size = math.prod(x_init.shape[1:])

        def field(t, h) -> Callable[[jax.Array], jax.Array]:
            if self.divergence_of == "velocity":
                return functools.partial(dynamics, t)
            return step_velocity(dynamics, method, t, h)

        def refine(index, t, h, z, memory):
            previous, accepted = memory  # (B, *event), (B,)
            fresh = jax.random.normal(
                jax.random.fold_in(direction_key, index), (self.num_candidates, *z.shape), z.dtype
            )
            if self.reuse_accepted:
                fresh = fresh.at[0].set(jnp.where(_per_sample(accepted, z), previous, fresh[0]))
            # Direction 0 is the state itself; argmin keeps it on ties, so acceptance is strict.
            directions = jnp.concatenate([jnp.zeros_like(z)[None], fresh])  # (K + 1, B, *event)
            candidates = z + self.perturbation_scale(t) * directions
            div = jax.vmap(lambda c: divergence(field(t, h), c)[1])(candidates)  # (K + 1, B)
            best = jnp.argmin(jnp.nan_to_num(div, nan=jnp.inf), axis=0)  # (B,)
            if self.divergence_floor:
                best = jnp.where(div[0] / event_size >= x_prediction_floor(t), best, 0)
            pick = jax.vmap(lambda a, k: a[k], in_axes=(1, 0))
            return pick(candidates, best), (pick(directions, best), best > 0)

        def keep(index, t, h, z, memory):
            return z, memory

        def apply(index, t, h, z, memory):
            return jax.lax.cond(t <= self.stop_time, refine, keep, index, t, h, z, memory)

        memory = (jnp.zeros_like(x_init), jnp.zeros(x_init.shape[:1], dtype=bool))
        return Refinement(apply, memory)


def step_velocity(
    dynamics: Dynamics, method: str, t: Float[Array, ""], h: Float[Array, ""]
) -> Callable[[jax.Array], jax.Array]:
    """z -> (step(z) - z) / h: the averaged velocity of one fixed step from t to t + h.

    u_t(z) for "euler"; 1/2 [u_t(z) + u_{t+h}(z + h u_t(z))] for "heun"; the Runge-Kutta
    weighted sums of the stage velocities for "midpoint" and "rk4".
    """
    step = FIXED_STEP_METHODS[method]
    return lambda z: (step(dynamics, t, h, z, update=_axpy) - z) / h


def _per_sample(mask: jax.Array, x: jax.Array) -> jax.Array:
    """A (B,) mask broadcastable against x of shape (B, *event)."""
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


class ModelPasses(NamedTuple):
    """Passes through the model: forward evaluations and forward-mode derivative (JVP) passes."""

    forward: int
    jvp: int

    @property
    def total(self) -> int:
        return self.forward + self.jvp


def sampling_passes(
    method: str,
    event_size: int,
    *,
    time_grid: Any = (0.0, 1.0),
    step_size: float | None = None,
    refiner: FlowDivergenceSampler | None = None,
) -> ModelPasses:
    """The model passes of one `ode_sample` call with a fixed-step method (per sample batch).

    Every step costs EVALS_PER_STEP[method] forward passes. With `refiner`, every step starting
    at t <= stop_time adds K + 1 divergences of F, each costing n_F times the passes of one
    divergence (`divergence_passes`: 1 forward and P JVPs, P = num_probes, or D = event_size
    for the exact trace), n_F = 1 for F = u_t and EVALS_PER_STEP[method] for the step's
    averaged velocity.
    """
    if method not in FIXED_STEP_METHODS:
        raise ValueError(f"sampling_passes counts fixed-step methods, got {method!r}.")
    nodes, _ = step_nodes(static_time_grid(time_grid), step_size)
    steps = len(nodes) - 1
    forward, jvp = EVALS_PER_STEP[method] * steps, 0
    if refiner is not None:
        refined = int(np.sum(nodes[:-1] <= refiner.stop_time))
        per_field = 1 if refiner.divergence_of == "velocity" else EVALS_PER_STEP[method]
        fwd, tangents = divergence_passes(
            event_size, exact=refiner.exact_divergence, num_probes=refiner.num_probes
        )
        divergences = refined * (refiner.num_candidates + 1) * per_field
        forward += divergences * fwd
        jvp += divergences * tangents
    return ModelPasses(forward, jvp)
