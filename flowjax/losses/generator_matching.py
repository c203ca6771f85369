"""Conditional generator matching with Bregman divergences.

Generator Matching (Holderrieth et al., 2024), the conditional generator matching loss: for a
generator parameterised by F_t^theta(x) (a velocity, a jump measure, ...), the loss
E_{t, z, x ~ p_t(.|z)} D(F_t(x | z), F_t^theta(x)) with a Bregman divergence
D(a, b) = phi(a) - phi(b) - <a - b, grad phi(b)> has the same gradient as the marginal loss
E_{t, x ~ p_t} D(F_t(x), F_t^theta(x)), because the marginal F_t(x) = E[F_t(x | z) | x] and
grad_b D(a, b) is affine in a. Divergences:

  flow   phi = |.|^2: D = |u - u_theta|^2 (the CFM loss);
  jump   phi(Q) = sum_y Q(y) log Q(y) on jump measures, the "infinitesimal KL"
         D(Q, Q_theta) = sum_y Q_theta(y) - Q(y) log Q_theta(y) + Q(y) log Q(y) - Q(y)
         = [rho log(rho / rho_theta) - rho + rho_theta] + rho KL(p || p_theta)
         for Q = rho p, Q_theta = rho_theta p_theta (rate times target over bins).

Here the path is the CondOT Gaussian path x_t = t z + (1 - t) x_0 and the jump measure the
CondOT jump model (`flowjax.paths.jump`) over equal bins of [low, high]. Rates enter scaled by
(1 - t); as D is 1-homogeneous, D((1 - t) Q, (1 - t) Q_theta) = (1 - t) D(Q, Q_theta), a positive
time weighting that leaves the minimiser unchanged and keeps the loss bounded near t = 1.

Factorised (multimodal) paths: each coordinate (each modality) has its own conditional path
and generator, and the loss is the sum of the per-coordinate Bregman divergences (flow terms for
the coordinates with a velocity, jump terms for those with a jump), then the mean over the batch.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy
from jaxtyping import Array, Float

from flowjax._checks import (
    check_batch_time,
    check_regular,
    check_same_shape,
    check_unit_interval,
    flat_batch,
)
from flowjax.paths.affine import CondOTProbPath, expand_time
from flowjax.paths.jump import condot_jump_bin_probs, condot_scaled_rate


def flow_bregman(
    velocity: Float[Array, "*shape"], target: Float[Array, "*shape"]
) -> Float[Array, "*shape"]:
    """|u - u_theta|^2 per coordinate (the Bregman divergence of phi = |.|^2)."""
    return (velocity - target) ** 2


def jump_bregman(
    scaled_rate: Float[Array, "*shape"],
    logits: Float[Array, "*shape num_bins"],
    target_rate: Float[Array, "*shape"],
    target_probs: Float[Array, "*shape num_bins"],
) -> Float[Array, "*shape"]:
    """The infinitesimal KL D(Q, Q_theta) per coordinate, >= 0 and 0 iff Q = Q_theta.

    Args:
      scaled_rate: the model's rate rho_theta > 0, shape (...).
      logits: the model's bin logits, (..., num_bins).
      target_rate: the target rate rho >= 0, shape (...).
      target_probs: the target's bin probabilities, (..., num_bins).
    """
    rate_term = xlogy(target_rate, target_rate) - xlogy(target_rate, scaled_rate)
    kl = jnp.sum(
        xlogy(target_probs, target_probs) - target_probs * jax.nn.log_softmax(logits, -1), -1
    )
    return rate_term - target_rate + scaled_rate + target_rate * kl


def generator_matching_loss(
    model_fn: Callable[..., Any],
    x_0: Float[Array, "B *event"],
    x_1: Float[Array, "B *event"],
    t: Float[Array, "B"],
    *,
    edges: Float[Array, "num_bins+1"],
    flow_weight: float = 1.0,
    jump_weight: float = 1.0,
    **model_kwargs: Any,
) -> Float[Array, ""]:
    """The conditional generator matching loss on the CondOT path, a scalar.

    Args:
      model_fn: called as model_fn(x_t, t, **model_kwargs) with t of shape (B,), returning a
        `flowjax.models.GeneratorOutput` (velocity and/or scaled_rate + logits).
      x_0: source samples N(0, I), (B, *event); x_1: data, (B, *event); t: (B,) in [0, 1).
      edges: the num_bins + 1 bin edges of the jump targets (`flowjax.paths.jump.bin_edges`).
      flow_weight, jump_weight: weights of the flow and jump divergences.
    """
    x_0, x_1, t = jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t)
    check_same_shape(x_0, x_1, "x_0", "x_1")
    check_batch_time(t, x_1, "x_1")
    check_unit_interval(t)
    if x_1.shape[0] == 0:
        raise ValueError(
            "generator_matching_loss is a mean over the batch, which needs at least one sample; "
            f"got x_1.shape={x_1.shape}."
        )
    sample = CondOTProbPath().sample(x_0, x_1, t)
    out = model_fn(sample.x_t, t, **model_kwargs)
    per_coordinate = jnp.zeros_like(x_1)
    if out.velocity is not None:
        per_coordinate += flow_weight * flow_bregman(out.velocity, sample.dx_t)
    if out.scaled_rate is not None:
        check_regular(t, "The CondOT jump rates of the loss", nonzero=(1.0 - t,))
        t_b = expand_time(t, x_1)
        target_rate = condot_scaled_rate(sample.x_t, x_1, t_b)
        target_probs = condot_jump_bin_probs(x_1, t_b, edges)
        per_coordinate += jump_weight * jump_bregman(
            out.scaled_rate, out.logits, target_rate, target_probs
        )
    return jnp.mean(jnp.sum(flat_batch(per_coordinate), axis=-1))
