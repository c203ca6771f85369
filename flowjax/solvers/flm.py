"""Samplers of flow language models (FLM) and their flow maps (FMLM).

One-step Language Modeling via Continuous Denoising (Lee et al., 2026; arXiv:2602.16813). The
state is the (B, L, V) point of the one-hot Gaussian path (`flowjax.paths.OneHotGaussianPath`),
started at eps ~ N(0, I); the grid is uniform in the argmax time alpha (`alpha_segments`,
mapped to g by `ArgmaxTime.host_alpha_to_g`) and the steps are taken in g, from 0 to 1.

  `flm_sample`       the ODE dx/dg = (p_hat(x, alpha(g)) - x) / (1 - g), Euler steps by
                     `flowjax.solvers.ode_sample` (so a refiner, e.g. the Flow Divergence Sampler,
                     applies unchanged: its floor -1/(1 - t) is this velocity's for a locally
                     constant p_hat). The last step ends at g = 1, where the Euler step returns
                     p_hat itself; the tokens are its argmax.
  `flow_map_sample`  iterates a flow map X_{s,t} over the grid (FMLM): `taylor_map` (stage one,
                     the teacher's velocity plus the learned second-order term) or `euler_map`
                     of a one-call predictor (stage two); any number of steps.

The maps, with D = g_t - g_s:

  euler_map(x)   = x + D (p - x) / (1 - g_s)                      (one Euler step of p)
  taylor_map(x)  = x + D (p_s - x) / (1 - g_s) + D^2 / 2 g_theta   (FMLM's X_{s,t}, eq. of
                                                                   its section 4)

both the identity at s = t.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax.paths.affine import expand_time
from flowjax.paths.one_hot import ArgmaxTime, one_hot_velocity
from flowjax.solvers.ode import Refiner, ode_sample
from flowjax.solvers.settings import SolverSettings

ProbsFn = Callable[..., Float[Array, "B L V"]]  # (x, alpha, **kwargs) -> p_hat
MapFn = Callable[..., Float[Array, "B L V"]]  # (x, alpha_s, alpha_t, g_s, g_t, **kwargs) -> X


def euler_map(
    x: Float[Array, "B L V"], p: Float[Array, "B L V"], g_s: Array, g_t: Array
) -> Float[Array, "B L V"]:
    """x + (g_t - g_s) (p - x) / (1 - g_s); g_s, g_t scalars or (B,)."""
    return x + (expand_time(g_t, x) - expand_time(g_s, x)) * one_hot_velocity(p, x, g_s)


def taylor_map(
    x: Float[Array, "B L V"],
    p_s: Float[Array, "B L V"],
    correction: Float[Array, "B L V"],
    g_s: Array,
    g_t: Array,
) -> Float[Array, "B L V"]:
    """x + D (p_s - x) / (1 - g_s) + D^2 / 2 correction, D = g_t - g_s (FMLM's flow map)."""
    step = expand_time(g_t, x) - expand_time(g_s, x)
    return euler_map(x, p_s, g_s, g_t) + 0.5 * step**2 * correction


def alpha_segments(times: Sequence[float], num_steps: int) -> list[np.ndarray]:
    """The alpha nodes of each interval of `times` (ascending from 0 to 1): uniform steps of at
    most 1 / num_steps (exactly the uniform grid of num_steps steps for times (0, 1))."""
    if not (isinstance(num_steps, (int, np.integer)) and num_steps >= 1):
        raise ValueError(f"The number of sampling steps must be an int >= 1, got {num_steps!r}.")
    times = np.asarray(times, np.float64)
    if times.ndim != 1 or len(times) < 2 or times[0] != 0.0 or times[-1] != 1.0 or np.any(
        np.diff(times) <= 0
    ):
        raise ValueError(
            f"times must ascend from 0 to 1 (the argmax times at which to return the state), "
            f"got {times.tolist()}."
        )
    segments = []
    for a, b in zip(times[:-1], times[1:]):
        steps = max(int(np.ceil((b - a) * num_steps - 1e-9)), 1)
        segments.append(np.linspace(a, b, steps + 1))
    return segments


def _check_init(x_init: Array, time: ArgmaxTime) -> None:
    if x_init.ndim != 3 or x_init.shape[-1] != time.vocab_size:
        raise ValueError(
            f"x_init must be the noise of sequences, shape (B, L, vocab_size={time.vocab_size}), "
            f"got {x_init.shape}."
        )


def _output(states: list[Array], times: Sequence[float], return_state: bool) -> Array:
    """The last state (or its argmax), or with more than two times the argmax at each (B, T, L)."""
    if len(times) > 2:
        return jnp.stack([jnp.argmax(x, axis=-1) for x in states], axis=1)
    return states[-1] if return_state else jnp.argmax(states[-1], axis=-1)


def flm_sample(
    probs_fn: ProbsFn,
    x_init: Float[Array, "B L V"],
    time: ArgmaxTime,
    num_steps: int,
    *,
    times: Sequence[float] = (0.0, 1.0),
    refiner: Refiner | None = None,
    key: jax.Array | None = None,
    return_state: bool = False,
    **model_kwargs: Any,
) -> Int[Array, "B L"] | Float[Array, "B L V"] | Int[Array, "B T L"]:
    """FLM's Euler sampler (module docstring): the argmax tokens (B, L), or the final state p_hat
    with `return_state`, or with more `times` (argmax times from 0 to 1) the tokens of the state
    at each (B, T, L). `probs_fn(x, alpha, **model_kwargs)` is the posterior p_hat (B, L, V) at
    the argmax time alpha (a scalar); `refiner` and `key` as in `ode_sample`."""
    _check_init(x_init, time)
    segments = alpha_segments(times, num_steps)

    def velocity(x, g, **kwargs):
        return one_hot_velocity(probs_fn(x, time.g_to_alpha(g), **kwargs), x, g)

    states = [x_init]
    for index, alphas in enumerate(segments):
        grid = time.host_alpha_to_g(alphas)
        states.append(
            ode_sample(
                velocity,
                states[-1],
                solver=SolverSettings(method="euler", time_grid=tuple(grid)),
                refiner=refiner,
                key=None if key is None else jax.random.fold_in(key, index),
                **model_kwargs,
            )
        )
    return _output(states, times, return_state)


def flow_map_sample(
    map_fn: MapFn,
    x_init: Float[Array, "B L V"],
    time: ArgmaxTime,
    num_steps: int,
    *,
    times: Sequence[float] = (0.0, 1.0),
    return_state: bool = False,
    **model_kwargs: Any,
) -> Int[Array, "B L"] | Float[Array, "B L V"] | Int[Array, "B T L"]:
    """Iterates x <- map_fn(x, alpha_s, alpha_t, g_s, g_t, **model_kwargs) over `num_steps`
    uniform steps of alpha; returns as `flm_sample`."""
    _check_init(x_init, time)
    dtype = x_init.dtype

    def body(x, step):
        return map_fn(x, *step, **model_kwargs), None

    states = [x_init]
    for alphas in alpha_segments(times, num_steps):
        gs = time.host_alpha_to_g(alphas)
        steps = tuple(jnp.asarray(a, dtype) for a in (alphas[:-1], alphas[1:], gs[:-1], gs[1:]))
        states.append(jax.lax.scan(body, states[-1], steps)[0])
    return _output(states, times, return_state)
