"""Markov generators on R^n (flow + diffusion + jump), their superposition, and their samplers.

Generator Matching (Holderrieth et al., 2024): a Markov process on R^n is described by its
generator

    L f(x) = grad f(x) . u_t(x) + 1/2 Tr(hess f(x) sigma_t(x)^2) + int (f(y) - f(x)) Q_t(dy; x),

here factorised per coordinate: coordinate i has a velocity u_t^i(x), a diffusion coefficient
sigma_t^i(x) (its own Brownian motion) and a jump measure Q_t^i(dy; x) = lambda_t^i(x) J_t^i(dy; x)
that moves only coordinate i. A `Generator` holds these for a batch; a generator function
`f(x, t, **cond) -> Generator` (t a scalar) is what the samplers integrate.

Markov superposition (the paper's section on combining models): for generators L_1, ..., L_m of
the same marginal path and weights a_i >= 0 summing to 1, sum_i a_i L_i generates the same path.
`superpose` builds it: velocities averaged, diffusion variances averaged, jump rates
lambda = sum_i a_i lambda_i and the jump target the mixture with weights a_i lambda_i / lambda.

`generator_sample` simulates the process with one `lax.scan`; one step from t to t + h, per
coordinate:
  - jump with probability 1 - exp(-h lambda) ("exact": the no-jump survival probability of a
    constant rate over the step) or min(h lambda, 1) ("linear"), to a draw of the jump target;
  - else move by the flow and diffusion: x + h u + sqrt(h) sigma xi (Euler-Maruyama), or, with
    `flow_method` "midpoint" / "heun", by that Runge-Kutta step of the velocity (the "mixed"
    sampler: a higher-order flow, Euler jumps) plus the same diffusion increment.
The generator is evaluated at the left end t of each step only, so the jump rates of the
CondOT jump model (which grow like 1/(1 - t)) are never evaluated at t = 1. Rates are finite
there for every t < 1; with `time_power` p > 1 the steps are uniform in tau with
t = 1 - (1 - tau)^p, so they shrink towards t = 1 where rates are large; the last step then
makes almost every coordinate with a positive rate jump, which lands it on the (narrow) jump
target of t close to 1, as the last step of a discrete flow lands on its posterior draw.

A negative jump rate is an error: a concrete `Generator` raises a ValueError; inside a
compiled sampler the coordinates whose rate was negative are set to NaN (so that the error
cannot pass unseen).

Jump targets are functions key -> destinations of the shape of x. `BinnedJump` is the one of
networks: per coordinate, logits over `num_bins` equal bins of [low, high], a bin drawn by the
inverse CDF (`sample_categorical`) and the destination uniform inside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from flowjax._checks import concrete_value
from flowjax.categorical import sample_categorical
from flowjax.solvers.integrate import FIXED_STEP_METHODS, _axpy, static_time_grid, step_nodes
from flowjax.solvers.settings import SolverSettings, check_euler, split_settings

JumpTarget = Callable[[jax.Array], jax.Array]  # key -> one destination per coordinate
SURVIVAL = ("exact", "linear")
FLOW_METHODS = ("euler", "midpoint", "heun")


@dataclasses.dataclass(frozen=True)
class BinnedJump:
    """A per-coordinate jump target over equal bins of [low, high].

    Attributes:
      logits: (..., num_bins) unnormalised log-probabilities of the bins, one row per coordinate.
      low, high: the range covered by the bins.
    """

    logits: Float[Array, "*shape num_bins"]
    low: float
    high: float

    def __post_init__(self):
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValueError(
                f"BinnedJump needs finite bounds with high > low, got low={self.low}, "
                f"high={self.high}."
            )

    def probs(self) -> Float[Array, "*shape num_bins"]:
        return jax.nn.softmax(self.logits, axis=-1)

    def __call__(self, key: jax.Array) -> Float[Array, "*shape"]:
        """One destination per coordinate, shape logits.shape[:-1]."""
        bin_key, offset_key = jax.random.split(key)
        num_bins = self.logits.shape[-1]
        index = sample_categorical(bin_key, self.probs(), self.logits.dtype)
        offset = jax.random.uniform(offset_key, index.shape, self.logits.dtype)
        width = (self.high - self.low) / num_bins
        return self.low + width * (index.astype(self.logits.dtype) + offset)


@dataclasses.dataclass(frozen=True)
class Generator:
    """The generator of a batch of states x (B, *event), per coordinate; any part may be None.

    Attributes:
      velocity: u_t(x), shape of x.
      diffusion: sigma_t(x) >= 0, shape of x (dX = u dt + sigma dW per coordinate).
      jump_rate: lambda_t(x) >= 0, shape of x.
      jump_target: key -> destinations of the shape of x (e.g. a `BinnedJump`); needed with a
        jump rate.
    """

    velocity: Float[Array, "B *event"] | None = None
    diffusion: Float[Array, "B *event"] | None = None
    jump_rate: Float[Array, "B *event"] | None = None
    jump_target: JumpTarget | None = None

    def __post_init__(self):
        if (self.jump_rate is None) != (self.jump_target is None):
            raise ValueError("A Generator needs both jump_rate and jump_target, or neither.")
        if all(v is None for v in (self.velocity, self.diffusion, self.jump_rate)):
            raise ValueError("A Generator needs a velocity, a diffusion or a jump rate.")
        for name in ("diffusion", "jump_rate"):
            value = concrete_value(getattr(self, name)) if getattr(self, name) is not None else None
            if value is not None and value.size and not np.all(value >= 0):
                raise ValueError(
                    f"Generator.{name} must be >= 0 everywhere; got a minimum of "
                    f"{np.nanmin(value):.6g} (or NaN)."
                )


GeneratorFn = Callable[..., Generator]  # (x, t, **cond) -> Generator, t a scalar


def check_weights(weights: Sequence[float], num: int) -> np.ndarray:
    """Superposition weights: `num` concrete numbers >= 0 summing to 1."""
    value = concrete_value(weights)
    if value is None or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"Superposition weights must be concrete numbers (not traced arrays), got {weights!r}."
        )
    value = value.astype(np.float64)
    if value.shape != (num,):
        raise ValueError(f"Expected {num} superposition weights, one per generator; got {weights!r}.")
    valid = np.all(np.isfinite(value)) and np.all(value >= 0)
    if not valid or abs(float(value.sum()) - 1.0) > 1e-6:
        raise ValueError(
            f"Superposition weights must be >= 0 and sum to 1 (so that the combined generator "
            f"keeps the marginal path); got {weights!r}, summing to {float(value.sum()):.6g}."
        )
    return value


def _mixture_target(targets, rates) -> JumpTarget:
    """Per coordinate, a draw of target i with probability rates[i] / sum(rates)."""

    def sample(key):
        keys = jax.random.split(key, len(targets) + 1)
        draws = jnp.stack([target(k) for target, k in zip(targets, keys[1:])], axis=-1)
        pick = sample_categorical(keys[0], jnp.stack(rates, axis=-1), draws.dtype)
        return jnp.take_along_axis(draws, pick[..., None], axis=-1)[..., 0]

    return sample


def superpose(generator_fns: Sequence[GeneratorFn], weights: Sequence[float]) -> GeneratorFn:
    """The Markov superposition sum_i weights[i] L_i of generator functions (same path).

    Raises a ValueError unless the weights are >= 0 and sum to 1.
    """
    a = check_weights(weights, len(generator_fns))

    def combined(x, t, **cond):
        parts = [(float(w), fn(x, t, **cond)) for w, fn in zip(a, generator_fns) if w > 0]

        def weighted(get, power=1):
            terms = [w * get(g) ** power for w, g in parts if get(g) is not None]
            return sum(terms) if terms else None

        variance = weighted(lambda g: g.diffusion, 2)
        jumping = [(w * g.jump_rate, g.jump_target) for w, g in parts if g.jump_rate is not None]
        return Generator(
            velocity=weighted(lambda g: g.velocity),
            diffusion=None if variance is None else jnp.sqrt(variance),
            jump_rate=sum(r for r, _ in jumping) if jumping else None,
            jump_target=(
                _mixture_target([j for _, j in jumping], [r for r, _ in jumping])
                if jumping
                else None
            ),
        )

    return combined


def power_time_nodes(
    time_grid: Any, step_size: float | None, time_power: float
) -> tuple[np.ndarray, np.ndarray]:
    """Solver nodes covering `time_grid` (ascending, in [0, 1]) with steps of `step_size` in
    tau = 1 - (1 - t)^(1 / time_power); returns (nodes in t, index of each grid time in them)."""
    grid = static_time_grid(time_grid)
    if not np.all(np.diff(grid) > 0):
        raise ValueError(f"time_grid must be ascending (from source to data), got {grid!r}.")
    if not time_power >= 1.0:
        raise ValueError(f"time_power must be >= 1, got {time_power!r}.")
    tau_nodes, index = step_nodes(1.0 - (1.0 - grid) ** (1.0 / time_power), step_size)
    nodes = 1.0 - (1.0 - tau_nodes) ** time_power
    nodes[index] = grid
    return nodes, index


def generator_sample(
    key: jax.Array,
    generator_fn: GeneratorFn,
    x_init: Float[Array, "*shape"],
    *,
    solver: SolverSettings | None = None,
    time_power: float = 1.0,
    survival: str = "exact",
    flow_method: str = "euler",
    return_intermediates: bool = False,
    **kwargs: Any,
) -> Float[Array, "*shape"] | Float[Array, "T *shape"]:
    """Simulates the Markov process of `generator_fn` from x_init at the first grid time.

    Args:
      key: PRNG key.
      generator_fn: called as generator_fn(x, t, **model_kwargs) with the whole state x and a
        scalar t < 1 (the left end of a step), returning a `Generator` for x.
      x_init: the state at the first grid time, any shape (usually (B, *event)), floating.
      solver: the `SolverSettings`: its step, in tau = 1 - (1 - t)^(1/time_power) (in t when
        time_power = 1; None takes one step per interval of the grid), and its time grid
        (>= 2 ascending times in [0, 1], default (0, 1)). The jumps are Euler steps (method
        "euler"); `flow_method` chooses the flow part's.
      time_power: p >= 1 of that change of variable; p > 1 shortens the steps near t = 1.
      survival: "exact" (jump probability 1 - exp(-h lambda)) or "linear" (min(h lambda, 1)).
      flow_method: "euler", or "midpoint" / "heun" for the velocity part (the mixed sampler).
      return_intermediates: return the states at every grid time, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      **kwargs: fields of `SolverSettings` replacing those of `solver` (step_size, time_grid);
        the others are passed to generator_fn at every evaluation (e.g. class labels).

    Returns:
      The state at the last grid time (or the stack at every grid time); one `lax.scan`.
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    check_euler(settings, "generator_sample")
    if survival not in SURVIVAL:
        raise ValueError(f"Unknown survival {survival!r}; expected one of {SURVIVAL}.")
    if flow_method not in FLOW_METHODS:
        raise ValueError(f"Unknown flow_method {flow_method!r}; expected one of {FLOW_METHODS}.")
    x_init = jnp.asarray(x_init)
    if not jnp.issubdtype(x_init.dtype, jnp.floating):
        raise TypeError(f"x_init must be floating point, got {x_init.dtype}.")
    nodes, grid_index = power_time_nodes(
        settings.grid((0.0, 1.0)), settings.step_size, time_power
    )
    dtype = x_init.dtype
    ts = jnp.asarray(nodes[:-1], dtype)
    hs = jnp.asarray(np.diff(nodes), dtype)
    keys = jax.random.split(key, len(nodes) - 1)

    def velocity(t, x):
        return generator_fn(x, t, **model_kwargs).velocity

    def step(x, t, h, step_key):
        g = generator_fn(x, t, **model_kwargs)
        jump_key, target_key, noise_key = jax.random.split(step_key, 3)
        moved = x
        if g.velocity is not None:
            if flow_method == "euler":
                moved = x + h * g.velocity
            else:
                moved = FIXED_STEP_METHODS[flow_method](velocity, t, h, x, _axpy)
        if g.diffusion is not None:
            moved = moved + jnp.sqrt(h) * g.diffusion * jax.random.normal(noise_key, x.shape, dtype)
        if g.jump_rate is None:
            return moved
        rate = g.jump_rate.astype(dtype)
        if survival == "exact":
            probability = -jnp.expm1(-h * rate)
        else:
            probability = jnp.minimum(h * rate, 1.0)
        jumps = jax.random.uniform(jump_key, x.shape, dtype) < probability
        new = jnp.where(jumps, g.jump_target(target_key).astype(dtype), moved)
        return jnp.where(rate < 0, jnp.nan, new)

    if not return_intermediates:
        x_final, _ = jax.lax.scan(lambda x, a: (step(x, *a), None), x_init, (ts, hs, keys))
        return x_final
    _, states = jax.lax.scan(lambda x, a: (step(x, *a),) * 2, x_init, (ts, hs, keys))
    states = jnp.concatenate([x_init[None], states])
    return states[jnp.asarray(grid_index)]


def network_generator(network: Callable[..., Any], low: float, high: float) -> GeneratorFn:
    """The generator function of a network returning a `flowjax.models.GeneratorOutput`
    (velocity, scaled_rate = (1 - t) lambda_t, logits over equal bins of [low, high]).

    Its jump rate is scaled_rate / (1 - t); t must stay below 1 (as in `generator_sample`).
    """

    def generator(x, t, **cond):
        out = network(x, t, **cond)
        jump = out.scaled_rate is not None
        return Generator(
            velocity=out.velocity,
            jump_rate=out.scaled_rate / (1.0 - t) if jump else None,
            jump_target=BinnedJump(out.logits, low, high) if jump else None,
        )

    return generator


def flow_part(generator_fn: GeneratorFn) -> Callable[..., jax.Array]:
    """The velocity field (x, t, **cond) -> u_t(x) of a generator function that has one."""
    return lambda x, t, **cond: generator_fn(x, t, **cond).velocity
