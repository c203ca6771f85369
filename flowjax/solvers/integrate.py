"""ODE integration of pytree states over a time grid: fixed-step Runge-Kutta and diffrax.

Flow Matching Guide and Code (Lipman et al., 2024), section 3.1 and 6.1: samples are drawn by
solving dx/dt = u_t(x) from t = 0 to 1, likelihoods by solving the augmented ODE from 1 to 0.
This module is the one integrator behind `ode_sample` and the likelihood functions.

Fixed-step methods (`euler`, `midpoint`, `heun`, `rk4`) run the whole integration as one
`jax.lax.scan`. Each interval [g_i, g_{i+1}] of the time grid is covered by steps of
`step_size` starting at g_i, the last step shortened to land on g_{i+1} (without `step_size`,
one step per interval); so the states returned at the grid's times are solver states, not
interpolations. Adaptive methods (`dopri5`, `tsit5`) use diffrax with a PID controller and
`throw=False`, so a sharded batch stays sharded; a failed solve (its step budget `max_steps`
spent) returns NaN. They solve in at least float32 and return the state's dtypes.

With `return_nfe=True` the number of evaluations of the dynamics is returned as well: for a
fixed-step method `EVALS_PER_STEP[method]` times the number of steps (known at trace time); for
an adaptive method `ADAPTIVE_EVALS_PER_STEP[method]` per attempted step (accepted or rejected,
from diffrax's statistics) plus one evaluation at the start (both are first-same-as-last
Runge-Kutta pairs: the first stage of a step is the last stage of the previous one).

A `Refinement` (e.g. the Flow Divergence Sampler's, `flowjax.solvers.fds`) may move the state
before every fixed step, inside the same `lax.scan`. A custom `update` replaces the y + h dy of
every stage and step (the Riemannian solvers, `flowjax.solvers.riemannian`, retract onto a
manifold there).

The grid is static: the time grid and step of the `SolverSettings` are known at trace time.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

if TYPE_CHECKING:
    from flowjax.solvers.settings import SolverSettings

PyTree = Any
Dynamics = Callable[[jax.Array, PyTree], PyTree]  # f(t, y) -> dy/dt, t a scalar
Update = Callable[[jax.Array, PyTree, PyTree], PyTree]  # (h, dy, y) -> y moved by h * dy


class Refinement(NamedTuple):
    """A map applied to the state before every fixed step, with a memory kept between steps.

    `apply(index, t, h, y, memory) -> (y, memory)` moves the state y before step number
    `index` (0, 1, ...), which goes from time t to t + h, and updates its memory (any pytree);
    the field `memory` holds the memory's value before the first step.
    """

    apply: Callable[
        [Int[Array, ""], Float[Array, ""], Float[Array, ""], PyTree, PyTree],
        tuple[PyTree, PyTree],
    ]
    memory: PyTree = None


def _euler(f: Dynamics, t, h, y, update: Update):
    return update(h, f(t, y), y)


def _midpoint(f: Dynamics, t, h, y, update: Update):
    k1 = f(t, y)
    return update(h, f(t + 0.5 * h, update(0.5 * h, k1, y)), y)


def _heun(f: Dynamics, t, h, y, update: Update):
    k1 = f(t, y)
    k2 = f(t + h, update(h, k1, y))
    return update(0.5 * h, jax.tree.map(jnp.add, k1, k2), y)


def _rk4(f: Dynamics, t, h, y, update: Update):
    k1 = f(t, y)
    k2 = f(t + 0.5 * h, update(0.5 * h, k1, y))
    k3 = f(t + 0.5 * h, update(0.5 * h, k2, y))
    k4 = f(t + h, update(h, k3, y))
    incr = jax.tree.map(lambda a, b, c, d: (a + 2.0 * b + 2.0 * c + d) / 6.0, k1, k2, k3, k4)
    return update(h, incr, y)


def _axpy(h, dy, y):
    return jax.tree.map(lambda d, v: v + (h * d).astype(v.dtype), dy, y)


FIXED_STEP_METHODS: dict[str, Callable] = {
    "euler": _euler,
    "midpoint": _midpoint,
    "heun": _heun,
    "rk4": _rk4,
}
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ADAPTIVE_METHODS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "dopri5": diffrax.Dopri5,
    "tsit5": diffrax.Tsit5,
}
ADAPTIVE_EVALS_PER_STEP = {"dopri5": 6, "tsit5": 6}
METHODS = tuple(FIXED_STEP_METHODS) + tuple(ADAPTIVE_METHODS)
MAX_FIXED_STEPS = 10_000_000
"""The most fixed steps one solve may take (its nodes are listed on the host first)."""


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown ODE method {method!r}; expected one of {', '.join(METHODS)}.")


def static_time_grid(time_grid: Any) -> Float[np.ndarray, "T"]:
    """The time grid as a float64 NumPy vector of >= 2 strictly monotone points in [0, 1]."""
    try:
        grid = np.asarray(time_grid, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        raise ValueError(
            "time_grid must be known at trace time (a tuple, list or NumPy array), not a traced "
            "array: the number of solver steps depends on it."
        ) from None
    except (TypeError, ValueError):
        raise ValueError(f"time_grid must be a sequence of times, got {time_grid!r}.") from None
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(
            f"time_grid must be a vector of at least 2 times, got shape {grid.shape}: {grid!r}."
        )
    if not np.all(np.isfinite(grid)):
        raise ValueError(f"time_grid must hold finite times, got {grid!r}.")
    diffs = np.diff(grid)
    if not (np.all(diffs > 0) or np.all(diffs < 0)):
        raise ValueError(f"time_grid must be strictly ascending or descending, got {grid!r}.")
    if grid.min() < 0.0 or grid.max() > 1.0:
        raise ValueError(f"time_grid must lie in [0, 1], got {grid!r}.")
    return grid


def step_nodes(
    grid: Float[np.ndarray, "T"], step_size: float | None
) -> tuple[Float[np.ndarray, "N"], Int[np.ndarray, "T"]]:
    """All solver nodes covering `grid`, and the index in them of each grid point.

    Returns (nodes, grid_index) with nodes[grid_index] == grid.
    """
    if step_size is None:
        return grid, np.arange(grid.shape[0])
    if not step_size > 0:
        raise ValueError(f"step_size must be positive or None, got {step_size!r}.")
    # A relative slack keeps 1/0.05 from turning into 20 steps plus one of length 1e-17.
    counts = [max(1.0, np.ceil(abs(b - a) / step_size - 1e-6)) for a, b in zip(grid[:-1], grid[1:])]
    if sum(counts) > MAX_FIXED_STEPS:
        raise ValueError(
            f"step_size={step_size!r} needs {sum(counts):.3g} steps over the time grid, more than "
            f"the {MAX_FIXED_STEPS:,} a solve may take; use a larger step_size."
        )
    nodes, index = [grid[0]], [0]
    for a, b, n in zip(grid[:-1], grid[1:], (int(c) for c in counts)):
        direction = np.sign(b - a)
        nodes.extend(a + direction * step_size * np.arange(1, n))
        nodes.append(b)
        index.append(len(nodes) - 1)
    return np.asarray(nodes), np.asarray(index)


def _float_dtype(y0: PyTree):
    leaves = jax.tree.leaves(y0)
    dtypes = [jnp.asarray(leaf).dtype for leaf in leaves]
    floats = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)]
    if not floats or len(floats) != len(dtypes):
        raise TypeError(f"The ODE state must be floating point, got dtypes {dtypes}.")
    return jnp.result_type(*floats)


def integrate(
    f: Dynamics,
    y0: PyTree,
    settings: SolverSettings,
    *,
    return_intermediates: bool = False,
    refine: Refinement | None = None,
    update: Update | None = None,
    return_nfe: bool = False,
) -> PyTree | tuple[PyTree, Int[Array, ""]]:
    """Solves dy/dt = f(t, y) from settings.time_grid[0] to settings.time_grid[-1].

    Args:
      f: dynamics f(t, y) with a scalar t; y is any pytree of floating arrays.
      y0: the state at the first time of the grid.
      settings: a `flowjax.solvers.SolverSettings` with its time grid set (the method, step,
        tolerances and step budget of the solve).
      return_intermediates: return the states at every time of the grid, stacked on a new
        leading axis, instead of the final state.
      refine: a map applied to the state before every step (fixed-step methods only).
      update: how a fixed step moves the state y by h * dy, update(h, dy, y); by default
        y + h * dy. The Riemannian solvers (`flowjax.solvers.riemannian`) pass one that stays
        on the manifold.
      return_nfe: also return the number of evaluations of f, an int32 scalar (see the
        module docstring); the result is then the pair (solution, nfe).
    """
    method = settings.method
    if settings.time_grid is None:
        raise ValueError("integrate needs settings with a time_grid (>= 2 times in [0, 1]).")
    grid = np.asarray(settings.time_grid, dtype=np.float64)
    dtype = _float_dtype(y0)
    if refine is not None and method in ADAPTIVE_METHODS:
        raise ValueError(
            f"refine moves the state before every fixed step; use one of "
            f"{', '.join(FIXED_STEP_METHODS)}, not the adaptive method {method!r}."
        )
    if update is not None and method in ADAPTIVE_METHODS:
        raise ValueError(
            f"A custom state update needs a fixed-step method ({', '.join(FIXED_STEP_METHODS)}), "
            f"not the adaptive method {method!r}."
        )
    if method in ADAPTIVE_METHODS:
        y, nfe = _integrate_adaptive(f, y0, grid, dtype, settings, return_intermediates)
        return (y, nfe) if return_nfe else y
    nodes, grid_index = step_nodes(grid, settings.step_size)
    y = _integrate_fixed(
        f, y0, grid, nodes, grid_index, dtype, method, return_intermediates, refine, update
    )
    if return_nfe:
        return y, jnp.asarray(EVALS_PER_STEP[method] * (nodes.shape[0] - 1), jnp.int32)
    return y


def _integrate_fixed(
    f, y0, grid, nodes, grid_index, dtype, method, return_intermediates, refine, update
):
    step = functools.partial(FIXED_STEP_METHODS[method], update=update or _axpy)
    ts = jnp.asarray(nodes[:-1], dtype=dtype)
    hs = jnp.asarray(np.diff(nodes), dtype=dtype)
    indices = jnp.arange(ts.shape[0])
    memory = None if refine is None else refine.memory

    def advance(y, memory, i, t, h):
        if refine is not None:
            y, memory = refine.apply(i, t, h, y, memory)
        return step(f, t, h, y), memory

    if not return_intermediates:

        def body(carry, ith):
            return advance(*carry, *ith), None

        (y_final, _), _ = jax.lax.scan(body, (y0, memory), (indices, ts, hs))
        return y_final

    # Step k ends at node k + 1; write it into its grid slot, or into a spare last slot.
    num_grid = grid.shape[0]
    slot = np.full(nodes.shape[0] - 1, num_grid, dtype=np.int32)
    slot[grid_index[1:] - 1] = np.arange(1, num_grid)
    buffers = jax.tree.map(
        lambda v: jnp.zeros((num_grid + 1,) + v.shape, v.dtype).at[0].set(v), y0
    )

    def body_with_buffer(carry, iths):
        y, memory, buf = carry
        i, t, h, s = iths
        y, memory = advance(y, memory, i, t, h)
        buf = jax.tree.map(lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, s, 0), buf, y)
        return (y, memory, buf), None

    (_, _, buffers), _ = jax.lax.scan(
        body_with_buffer, (y0, memory, buffers), (indices, ts, hs, jnp.asarray(slot))
    )
    return jax.tree.map(lambda b: b[:num_grid], buffers)


def _integrate_adaptive(f, y0, grid, dtype, settings: SolverSettings, return_intermediates):
    """diffrax's solve in at least float32 (times and state: a float16 or bfloat16 clock cannot
    resolve the steps, and the error estimate of a bfloat16 state never meets the tolerances),
    returned in the state's dtypes; NaN where the solve failed (e.g. `max_steps` reached)."""
    dtype = jnp.promote_types(dtype, jnp.float32)
    term = diffrax.ODETerm(lambda t, y, args: f(t, y))
    step = settings.step_size
    t0, t1 = float(grid[0]), float(grid[-1])
    saveat = (
        diffrax.SaveAt(ts=jnp.asarray(grid, dtype=dtype))
        if return_intermediates
        else diffrax.SaveAt(t1=True)
    )
    solution = diffrax.diffeqsolve(
        term,
        ADAPTIVE_METHODS[settings.method](),
        t0=jnp.asarray(t0, dtype),
        t1=jnp.asarray(t1, dtype),
        dt0=None if step is None else (step if t1 > t0 else -step),
        y0=jax.tree.map(lambda v: v.astype(jnp.promote_types(v.dtype, dtype)), y0),
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=settings.rtol, atol=settings.atol),
        max_steps=settings.max_steps,
        throw=False,
    )
    nfe = ADAPTIVE_EVALS_PER_STEP[settings.method] * solution.stats["num_steps"] + 1
    ys = solution.ys if return_intermediates else jax.tree.map(lambda v: v[-1], solution.ys)
    failed = solution.result != diffrax.RESULTS.successful
    ys = jax.tree.map(
        lambda v, v0: jnp.where(failed, jnp.nan, v).astype(jnp.asarray(v0).dtype), ys, y0
    )
    return ys, jnp.asarray(nfe, jnp.int32)
