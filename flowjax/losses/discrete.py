"""Losses of discrete flows (generalized KL, cross-entropy) and their ELBO in bits per token.

Flow Matching Guide and Code (Lipman et al., 2024), section 7 (discrete flow matching losses), and
Shaul et al. (2024), "Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective"
(the ELBO of any discrete path). Per token, with the conditional velocity u = u_t(., x_t | x_1)
of the path and the model's velocity u^theta = u_t^theta(., x_t) built from its posterior logits
(rates to the tokens y != x_t^i), the generalized KL divergence is

    D(u, u^theta) = sum_{y != x_t^i} [u^theta(y) - u(y) + u(y) log(u(y) / u^theta(y))] >= 0,

zero iff u^theta = u on the support of u. It is the rate of the KL divergence between the path
measure of the conditional process and that of the model's CTMC, so, both starting from p_0,

    log p_1^theta(x_1) >= ELBO(x_1) = -int_0^1 E_{x_t ~ p_t(. | x_1)} sum_i D_i dt.

On the mixture path D is the reference code's `MixturePathGeneralizedKL`,
-kappa'/(1 - kappa) [p_{1|t}(x_t^i) - delta + (1 - delta) log p_{1|t}(x_1^i)] with
delta = [x_t^i = x_1^i]; on the metric-induced path it needs the O(V^2) marginal velocity. The
cross-entropy -log p_{1|t}(x_1^i | x_t) trains the same posterior without time weights (and
costs O(V) on any path), but is not a likelihood bound.

Shapes: tokens (B, *event), logits (B, *event, V), t (B,); per-token losses (B, *event).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flowjax._checks import (
    check_batch_time,
    check_logits,
    check_same_shape,
    check_tokens,
    flat_batch,
)
from flowjax.paths.discrete import DiscretePath



def generalized_kl(
    path: DiscretePath,
    logits: Float[Array, "B *event V"],
    x_1: Int[Array, "B *event"],
    x_t: Int[Array, "B *event"],
    t: Float[Array, "B"],
) -> Float[Array, "B *event"]:
    """D(u_t(. | x_1), u_t^theta) per token, shape (B, *event).

    Args:
      path: a discrete path (`MixtureDiscreteProbPath` with a source, `MetricInducedProbPath`).
      logits: the model's posterior logits, shape x_t.shape + (V,).
      x_1: data tokens, shape (B, *event).
      x_t: tokens drawn from the path at time t, shape (B, *event).
      t: times in [0, 1), shape (B,).
    """
    _check_loss_args(path, logits, x_1, x_t, t)
    log_u_model = path.posterior_to_log_velocity(logits, x_t, t)
    current = jax.nn.one_hot(x_t, logits.shape[-1], dtype=bool)
    u = jnp.where(current, 0.0, path.conditional_velocity(x_t, x_1, t))
    positive = u > 0
    log_ratio = jnp.log(jnp.where(positive, u, 1.0)) - log_u_model
    cross = jnp.where(positive, u * log_ratio, 0.0).sum(axis=-1)
    return jnp.exp(log_u_model).sum(axis=-1) - u.sum(axis=-1) + cross


def cross_entropy(
    logits: Float[Array, "B *event V"], x_1: Int[Array, "B *event"]
) -> Float[Array, "B *event"]:
    """-log p_{1|t}(x_1^i | x_t) per token, shape (B, *event)."""
    check_logits(logits, x_1, None, "x_1")
    check_tokens(x_1, logits.shape[-1], "x_1")
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, x_1[..., None], axis=-1)[..., 0]


DISCRETE_LOSSES: dict[str, Callable[..., Array]] = {
    "generalized_kl": generalized_kl,
    "cross_entropy": lambda path, logits, x_1, x_t, t: cross_entropy(logits, x_1),
}
"""Per-token losses by name, all called as loss(path, logits, x_1, x_t, t)."""


def discrete_loss(
    model_fn: Callable[..., Array],
    path: DiscretePath,
    x_1: Int[Array, "B *event"],
    x_t: Int[Array, "B *event"],
    t: Float[Array, "B"],
    *,
    loss: str = "generalized_kl",
    **model_kwargs: Any,
) -> Float[Array, ""]:
    """The mean over tokens of a per-token loss of the posterior model_fn(x_t, t); a scalar.

    Args:
      model_fn: the posterior network, model_fn(x_t, t, **model_kwargs) -> logits with t of
        shape (B,).
      loss: "generalized_kl" or "cross_entropy".
    """
    if loss not in DISCRETE_LOSSES:
        raise ValueError(
            f"Unknown discrete loss {loss!r}; expected one of {tuple(DISCRETE_LOSSES)}."
        )
    if math.prod(jnp.shape(x_t)) == 0:
        raise ValueError(
            "discrete_loss is a mean over the tokens of x_t, which needs at least one token; "
            f"got x_t.shape={jnp.shape(x_t)}."
        )
    logits = model_fn(x_t, t, **model_kwargs)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # bfloat16 -> float32
    return jnp.mean(DISCRETE_LOSSES[loss](path, logits, x_1, x_t, t))


def discrete_elbo(
    key: Array,
    model_fn: Callable[..., Array],
    path: DiscretePath,
    x_1: Int[Array, "B *event"],
    *,
    num_time_samples: int = 16,
    **model_kwargs: Any,
) -> Float[Array, "B"]:
    """An unbiased estimate of the ELBO of each sequence x_1, in nats, shape (B,).

    ELBO(x_1) = -int_0^1 E_{x_t ~ p_t(. | x_1)} sum_i D_i dt <= log p_1^theta(x_1), estimated
    with `num_time_samples` stratified times per sequence (t_k uniform in [k/K, (k+1)/K)), each
    with its own x_0 ~ p_0 and x_t ~ p_t(. | x_0, x_1) (times are kept below 1, where the rates
    are singular). One model evaluation per time sample, run as a `lax.scan`.

    Args:
      key: PRNG key.
      model_fn: the posterior network, model_fn(x_t, t, **model_kwargs) -> logits, t of shape (B,).
      path: the discrete path the model was trained on (it must know its source p_0).
      x_1: data tokens, shape (B, *event).
      num_time_samples: K.
    """
    x_1 = jnp.asarray(x_1)
    check_tokens(x_1, path.vocab_size, "x_1")
    if path.source is None:
        raise ValueError("discrete_elbo needs the path's source p_0; build the path with one.")
    if not (isinstance(num_time_samples, int) and num_time_samples >= 1):
        raise ValueError(f"num_time_samples must be an int >= 1, got {num_time_samples!r}.")
    batch = x_1.shape[0]
    dtype = jnp.result_type(float)
    below_one = jnp.nextafter(jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype))

    def one_time(total, stratum_key):
        stratum, k = stratum_key
        k_u, k_0, k_t = jax.random.split(k, 3)
        u = jax.random.uniform(k_u, (batch,), dtype)
        t = jnp.minimum((stratum + u) / num_time_samples, below_one)  # rounding can reach 1
        x_0 = path.source.sample(k_0, x_1.shape)
        x_t = path.sample(k_t, x_0, x_1, t).x_t
        logits = model_fn(x_t, t, **model_kwargs).astype(dtype)
        divergence = generalized_kl(path, logits, x_1, x_t, t)
        return total + flat_batch(divergence).sum(axis=1), None

    strata = jnp.arange(num_time_samples, dtype=dtype)
    keys = jax.random.split(key, num_time_samples)
    total, _ = jax.lax.scan(one_time, jnp.zeros((batch,), dtype), (strata, keys))
    return -total / num_time_samples


def elbo_bits_per_token(elbo: Float[Array, "*shape"], num_tokens: int) -> Float[Array, "*shape"]:
    """-ELBO / (num_tokens log 2): an upper bound on the negative log-likelihood in bits/token."""
    return -jnp.asarray(elbo) / (num_tokens * math.log(2.0))


def _check_loss_args(path, logits, x_1, x_t, t) -> None:
    check_same_shape(x_1, x_t, "x_1", "x_t")
    check_tokens(x_1, logits.shape[-1], "x_1")
    check_tokens(x_t, logits.shape[-1], "x_t")
    check_logits(logits, x_t, path.vocab_size)
    check_batch_time(jnp.asarray(t), x_t, "x_t")
