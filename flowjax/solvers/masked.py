"""The ancestral sampler of masked diffusion language models.

MDLM (Sahoo et al., 2024, section 3.2.2 / eq. 6) and MD4 (Shi et al., 2024, section 4): on a
mask path, a token unmasked at time t (flowjax time: t = 0 all masked, t = 1 data) stays as it
is, and from t to s > t a masked token is revealed with probability

    (kappa_s - kappa_t) / (1 - kappa_t),

its value drawn from the model's posterior p(x_1 = v | x_t) over the data tokens; otherwise it
stays masked. This is the exact reverse transition of the forward masking process given the
posterior, so any number of steps is valid (no time discretisation error beyond the posterior's
factorisation over positions). The step that ends at t = 1 reveals every remaining mask.

Skipping unchanged steps (MDLM's caching): when no token of the batch changed in a step, the
network's input is the same as one step before; for a network that does not read t (MDLM and
IMDM run without time conditioning) its logits are then the same, and the sampler does not
call the network (`reuse_unchanged=True`). With many steps and short sequences most steps
change nothing, so the number of network evaluations (NFE, returned with `return_nfe`) falls
far below the number of steps. A time-conditioned network must be sampled with
`reuse_unchanged=False`.

Each network evaluation draws one candidate token per position from its posterior, and a
position revealed in a step takes its candidate. Without skipping this is the draw of every
step. With skipping the candidates are kept until the next evaluation, so a skipped step costs
O(B L) instead of a softmax and a draw over (B, L, V), and the samples keep their law: a
position is revealed at most once, its candidate was drawn from the same logits (nothing
changed since), and the reveal decisions are independent of the candidates. The same key then
gives other samples than without skipping, from the same distribution.

Categorical draws are inverse-CDF draws in `dtype` (`flowjax.categorical.sample_categorical`);
float64 (with `jax.enable_x64`) avoids the float32 rounding that skews the draws of low-
probability tokens, which moved the generative perplexity of the Flow Matching Guide's text
models (flow_matching issue 27).

The infinite mask (IMDM): with `draw_noise`, every position carries a continuous label eps
(`flowjax.models.InfiniteMaskTransformer`), drawn once per position at the start (or given as
`noise_init`) and passed to the network as `eps=`. From t to s a masked position

    becomes token v          with probability (kappa_s - kappa_t) / (1 - kappa_t) p(v | x_t, eps),
    stays masked, same eps   with probability (kappa_t / kappa_s - kappa_t) / (1 - kappa_t),
    stays masked, new eps    with probability (1 - kappa_t / kappa_s)(1 - kappa_s) / (1 - kappa_t).

The three sum to one, and the two masked branches together are the stay-masked probability
(1 - kappa_s) / (1 - kappa_t) of the masked model above: the token process is MDLM's, and eps is
refreshed where a position at s would, under the forward process, have been masked after t
already (its label then carries no information from before s). `fixed_noise=True` keeps every
eps to the end (MDLM's transitions given one eps: the sampler of the rectified couplings of
IM-ReDi). A step changes the network's input when a token is revealed or an eps redrawn; with
`reuse_unchanged` the network is skipped in the other steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax._checks import check_logits, check_tokens
from flowjax.categorical import check_categorical_dtype, sample_categorical
from flowjax.paths.discrete import MaskSource, MixtureDiscreteProbPath
from flowjax.solvers.integrate import step_nodes
from flowjax.solvers.settings import SolverSettings, check_euler, split_settings


def infinite_mask_transition(
    kappa_t: Float[Array, "*shape"], kappa_s: Float[Array, "*shape"]
) -> tuple[Array, Array, Array]:
    """The probabilities that a position masked at t is, at s > t, (revealed, masked with the
    same eps, masked with a new eps) (module docstring). The first is the masked model's reveal
    probability; the last two sum to its stay-masked probability (1 - kappa_s) / (1 - kappa_t)."""
    kappa_t, kappa_s = jnp.asarray(kappa_t), jnp.asarray(kappa_s)
    reveal = (kappa_s - kappa_t) / (1.0 - kappa_t)
    keep = (kappa_t / kappa_s - kappa_t) / (1.0 - kappa_t)
    redraw = (1.0 - kappa_t / kappa_s) * (1.0 - kappa_s) / (1.0 - kappa_t)
    return reveal, keep, redraw


def masked_diffusion_sample(
    key: jax.Array,
    model_fn: Callable[..., Array],
    x_init: Int[Array, "*shape"],
    path: MixtureDiscreteProbPath,
    *,
    solver: SolverSettings | None = None,
    reuse_unchanged: bool = False,
    draw_noise: Callable[[jax.Array, tuple[int, ...]], Array] | None = None,
    noise_init: Float[Array, "*shape D"] | None = None,
    fixed_noise: bool = False,
    return_intermediates: bool = False,
    return_nfe: bool = False,
    dtype=jnp.float32,
    **kwargs: Any,
) -> Int[Array, "*shape"] | Int[Array, "T *shape"] | tuple[Array, Int[Array, ""]]:
    """Ancestral sampling of a masked diffusion model from x_init (usually all masks).

    Args:
      key: PRNG key.
      model_fn: the posterior network, model_fn(x, t, **model_kwargs) -> logits x.shape + (V,)
        with a scalar t; the mask token's logit is ignored (never drawn).
      x_init: integer tokens at the first grid time; masked positions hold the mask token.
      path: a `MixtureDiscreteProbPath` with a `MaskSource` (its kappa_t is the probability
        that a token is unmasked at t).
      solver: the `SolverSettings`: its step and time grid (ascending in [0, 1], default
        (0, 1)); steps restart at every grid time (intermediates are states at those times).
      reuse_unchanged: skip the network when no token changed in the last step, keeping its
        candidate tokens (only exact for a network that does not read t).
      draw_noise: (key, shape) -> eps (*shape, D_eps), the infinite mask's labels (IMDM; e.g.
        `InfiniteMaskTransformer.draw_noise`); model_fn is then called with `eps=`.
      noise_init: the labels at the start, (*x_init.shape, D_eps) (default: drawn).
      fixed_noise: keep every label to the end instead of redrawing it (module docstring).
      return_intermediates: return the states at every grid time, (len(grid), *x_init.shape).
      return_nfe: also return the number of network evaluations (int32), as (x, nfe).
      dtype: floating dtype of the categorical draws (float64 needs `jax.enable_x64`).
      **kwargs: fields of `SolverSettings` replacing those of `solver` (step_size,
        time_grid); the others are passed to model_fn (e.g. class labels).

    Returns:
      int32 tokens of the shape of x_init at the last grid time (or the stack at every grid
      time), and the NFE with `return_nfe`. One `lax.scan` over the steps.
    """
    settings, model_kwargs = split_settings(solver, kwargs)
    check_euler(settings, "masked_diffusion_sample")
    source = getattr(path, "source", None)
    if not isinstance(source, MaskSource):
        raise ValueError(
            "masked_diffusion_sample needs a MixtureDiscreteProbPath with a MaskSource (the "
            f"ancestral sampler reveals masked tokens); got a path with source {source!r}."
        )
    x_init = jnp.asarray(x_init)
    check_tokens(x_init, path.vocab_size, "x_init")
    dtype = check_categorical_dtype(dtype)
    grid = np.asarray(settings.grid((0.0, 1.0)))
    if not np.all(np.diff(grid) > 0):
        raise ValueError(f"time_grid must be ascending (from masks to data), got {grid!r}.")
    nodes, grid_index = step_nodes(grid, settings.step_size)
    time_dtype = jnp.result_type(float)
    ts = jnp.asarray(nodes[:-1], time_dtype)
    ss = jnp.asarray(nodes[1:], time_dtype)
    last = jnp.asarray(nodes[1:] == 1.0)
    if draw_noise is not None:
        noise_key, key = jax.random.split(key)
    keys = jax.random.split(key, len(nodes) - 1)
    mask = source.mask_token
    x_init = x_init.astype(jnp.int32)
    if draw_noise is None:
        if noise_init is not None or fixed_noise:
            raise ValueError("noise_init and fixed_noise need draw_noise (the IMDM sampler).")
        eps_init = jnp.zeros(x_init.shape + (0,))
    elif noise_init is None:
        eps_init = draw_noise(noise_key, x_init.shape)
    else:
        eps_init = jnp.asarray(noise_init)
        if eps_init.shape[:-1] != x_init.shape:
            raise ValueError(
                f"noise_init must hold one label per position, shape {x_init.shape} + (D_eps,), "
                f"got {eps_init.shape}."
            )

    def candidates(x, eps, t, key):
        """One network evaluation: a token per position drawn from its posterior (no mask)."""
        if draw_noise is None:
            logits = model_fn(x, t, **model_kwargs)
        else:
            logits = model_fn(x, t, eps=eps, **model_kwargs)
        check_logits(logits, x, path.vocab_size, "x")
        weights = jax.nn.softmax(logits.astype(dtype), axis=-1).at[..., mask].set(0.0)
        return sample_categorical(key, weights, dtype)

    def step(carry, inputs):
        x, eps, tokens, changed, nfe = carry
        t, s, is_last, step_key = inputs
        reveal_key, token_key = jax.random.split(step_key)
        if reuse_unchanged:
            tokens, nfe = jax.lax.cond(
                changed,
                lambda: (candidates(x, eps, t, token_key), nfe + 1),
                lambda: (tokens, nfe),
            )
        else:
            tokens, nfe = candidates(x, eps, t, token_key), nfe + 1
        reveal, keep, _ = infinite_mask_transition(
            path.scheduler(t).alpha_t, path.scheduler(s).alpha_t
        )
        reveal = jnp.where(is_last, 1.0, reveal).astype(dtype)
        u = jax.random.uniform(reveal_key, x.shape, dtype)
        masked = x == mask
        revealed = masked & (u < reveal)
        x_next = jnp.where(revealed, tokens, x)
        changed = jnp.any(revealed)
        if draw_noise is not None and not fixed_noise:
            redrawn = masked & (u >= reveal + keep.astype(dtype))
            fresh = draw_noise(jax.random.fold_in(step_key, 2), x.shape)
            eps = jnp.where(redrawn[..., None], fresh, eps)
            changed = changed | jnp.any(redrawn)
        carry = (x_next, eps, tokens, changed, nfe)
        return carry, x_next if return_intermediates else None

    carry = (
        x_init, eps_init, jnp.zeros_like(x_init), jnp.asarray(True), jnp.zeros((), jnp.int32)
    )
    (x_final, _, _, _, nfe), states = jax.lax.scan(step, carry, (ts, ss, last, keys))
    if return_intermediates:
        x_final = jnp.concatenate([x_init[None], states[grid_index[1:] - 1]])
    return (x_final, nfe) if return_nfe else x_final
