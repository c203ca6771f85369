"""Sampling a discrete flow: the Euler method for its continuous-time Markov chain.

Flow Matching Guide and Code (Lipman et al., 2024), section 7 (sampling a factorized CTMC) and the
reference code's `MixtureDiscreteEulerSolver`, for any discrete path of flowjax (mixture or
metric-induced). One step from t to t + h, independently for every token i of x_t:

    X_1^i ~ p_{1|t}(. | x_t)                                    (softmax of the model's logits)
    u^i(y) = u_t(y, x_t^i | X_1^i) + c_t v_t(y, x_t^i | X_1^i),  y != x_t^i
    lambda^i = sum_{y != x_t^i} u^i(y)
    x_{t+h}^i ~ u^i / lambda^i  with probability 1 - exp(-h lambda^i), else x_t^i,

with u the path's conditional velocity, v its divergence-free corrector
(`divergence_free_velocity`) and c_t = `div_free` (a constant or a function of t). Drawing X_1
first and jumping with the conditional rates gives, in expectation, the marginal velocity
E_{X_1}[u_t(., x_t | X_1)] and costs O(V) per token on every path. The step that ends at t = 1
returns X_1 itself (the conditional rates are singular there).

The model's logits are used as the posterior as they are: a network trained through
`path.posterior_logits` (the trainer's default) is sampled through it too, e.g.
`lambda x, t: path.posterior_logits(network(x, t), x, t)`.

Classifier-free guidance for discrete models: pass `flowjax.guidance.guided_logits(model, w,
null_label=...)` as the model; its logits (1 + w) l(. | y) - w l(.) give the posterior
p_w proportional to p(. | x_t, y)^(1 + w) p(. | x_t)^(-w).

Categorical draws use the inverse CDF in `dtype` (a cumulative sum over the vocabulary and one
uniform per token); float64 (which needs `jax.enable_x64`) removes the float32 rounding that
makes tokens of probability below ~1e-7 of the total unreachable or mis-weighted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from flowjax._checks import check_logits, check_tokens
from flowjax.categorical import check_categorical_dtype, sample_categorical
from flowjax.paths.discrete import DiscretePath
from flowjax.solvers.integrate import step_nodes
from flowjax.solvers.settings import SolverSettings, check_euler, split_settings


def discrete_sample(
    key: jax.Array,
    model_fn: Callable[..., Array],
    x_init: Int[Array, "*shape"],
    path: DiscretePath,
    *,
    solver: SolverSettings | None = None,
    div_free: float | Callable[[Array], Array] = 0.0,
    return_intermediates: bool = False,
    dtype=jnp.float32,
    **kwargs: Any,
) -> Int[Array, "*shape"] | Int[Array, "T *shape"]:
    """Simulates the CTMC of a discrete flow from x_init at the first grid time to the last.

    Args:
      key: PRNG key.
      model_fn: the posterior network, called as model_fn(x, t, **model_kwargs) with the whole
        state x and a scalar t, returning logits of shape x.shape + (V,).
      x_init: integer tokens at the first grid time, any shape (usually (B, *event)); e.g. a
        mask source's `MaskSource(V).sample(key, shape)`.
      path: the discrete path the model was trained on (any `flowjax.paths.DiscretePath`:
        `MixtureDiscreteProbPath` with a source, or `MetricInducedProbPath`).
      solver: the `SolverSettings`: its step (None: one step per interval of the grid) and its
        time grid (>= 2 strictly ascending times in [0, 1], default (0, 1)); steps restart at
        every grid time, so intermediates are states of the chain at those times. The method
        is Euler's ("euler").
      div_free: the corrector weight c_t >= 0, a number or a function of the scalar t.
      return_intermediates: return the states at every grid time, shape
        (len(time_grid), *x_init.shape), instead of the final state.
      dtype: floating dtype of the categorical draws (float64 needs `jax.enable_x64`).
      **kwargs: fields of `SolverSettings` replacing those of `solver` (step_size, time_grid);
        the others are passed to model_fn at every step (e.g. class labels).

    Returns:
      int32 tokens of the shape of x_init at the last grid time, or the stack at every grid
      time. One model evaluation per step, the whole run one `lax.scan`.
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    check_euler(settings, "discrete_sample")
    x_init = jnp.asarray(x_init)
    check_tokens(x_init, path.vocab_size, "x_init")
    if path.vocab_size is None:
        raise ValueError(
            "discrete_sample needs the path's vocabulary: build a MixtureDiscreteProbPath with a "
            "source (MaskSource(V), UniformSource(V), CategoricalSource(p))."
        )
    dtype = check_categorical_dtype(dtype)
    grid = np.asarray(settings.grid((0.0, 1.0)))
    if not np.all(np.diff(grid) > 0):
        raise ValueError(f"time_grid must be ascending (from source to data), got {grid!r}.")
    if not callable(div_free) and div_free < 0:
        raise ValueError(f"div_free must be >= 0, got {div_free!r}.")
    nodes, grid_index = step_nodes(grid, settings.step_size)
    time_dtype = jnp.result_type(float)
    ts = jnp.asarray(nodes[:-1], time_dtype)
    hs = jnp.asarray(np.diff(nodes), time_dtype)
    ends_at_one = jnp.asarray(nodes[1:] == 1.0)
    keys = jax.random.split(key, len(nodes) - 1)
    x_init = x_init.astype(jnp.int32)

    def step(x, t, h, last, step_key):
        logits = model_fn(x, t, **model_kwargs)
        check_logits(logits, x, path.vocab_size, "x")
        k_posterior, k_jump, k_target = jax.random.split(step_key, 3)
        x_1 = sample_categorical(k_posterior, jax.nn.softmax(logits.astype(dtype), axis=-1), dtype)
        rates = path.conditional_velocity(x, x_1, t)
        weight = div_free(t) if callable(div_free) else div_free
        if callable(div_free) or weight != 0.0:
            rates = rates + weight * path.divergence_free_velocity(x, x_1, t)
        current = jax.nn.one_hot(x, rates.shape[-1], dtype=bool)
        rates = jnp.where(current, 0.0, rates).astype(dtype)
        intensity = rates.sum(axis=-1)
        jump = jax.random.uniform(k_jump, x.shape, dtype) < -jnp.expm1(-h.astype(dtype) * intensity)
        x_next = jnp.where(jump, sample_categorical(k_target, rates, dtype), x)
        return jnp.where(last, x_1, x_next)

    if not return_intermediates:

        def body(x, inputs):
            return step(x, *inputs), None

        x_final, _ = jax.lax.scan(body, x_init, (ts, hs, ends_at_one, keys))
        return x_final

    # Step k ends at node k + 1: write it into its grid slot, or into a spare last slot.
    num_grid = grid.shape[0]
    slot = np.full(len(nodes) - 1, num_grid, dtype=np.int32)
    slot[grid_index[1:] - 1] = np.arange(1, num_grid)
    buffer = jnp.zeros((num_grid + 1, *x_init.shape), jnp.int32).at[0].set(x_init)

    def body_with_buffer(carry, inputs):
        x, buf = carry
        *step_inputs, s = inputs
        x = step(x, *step_inputs)
        return (x, jax.lax.dynamic_update_index_in_dim(buf, x, s, 0)), None

    (_, buffer), _ = jax.lax.scan(
        body_with_buffer, (x_init, buffer), (ts, hs, ends_at_one, keys, jnp.asarray(slot))
    )
    return buffer[:num_grid]
