"""Losses of flow language models (FLM) and of their flow maps (FMLM).

One-step Language Modeling via Continuous Denoising (Lee et al., 2026; arXiv:2602.16813), with
the one-hot Gaussian path x_g = (1 - g) eps + g e_{x_1} of `flowjax.paths.OneHotGaussianPath`
and times given as the argmax time alpha (g = alpha^-1(alpha), `flowjax.paths.ArgmaxTime`).

`flm_loss`: the cross-entropy of the x-prediction p_hat = softmax(f_theta(x_g, alpha)) at the data
tokens, -log p_hat(x_1^i), averaged over tokens; with a learned weight w(alpha) of the sequence,
e^{-w} CE + w (the minimiser of e^{-w} L + w over w is w = log L, which evens out the loss scale
across times).

`flow_map_loss` (FMLM stage one): the student's map X_{s,t}(x) = x + D v_s(x) + D^2/2 g_theta(x,
s, t), D = g_t - g_s, with v_s = (p_s - x)/(1 - g_s) the frozen teacher FLM's velocity. Its
target is the composition of two half-maps (semigroup, X_{s,t} = X_{u,t} o X_{s,u} with u the
midpoint in alpha), each from the teacher's velocity and the student's own correction under a
stop-gradient. Written, as the authors do, as x-predictions (the point each map aims at from x_s
along its average velocity):

    prediction  p_s + (1 - g_s) D/2 g_theta(x_s, s, t)
    target      x_s + (1 - g_s) v_hat,    v_hat = [D_1 (v_s + D_1/2 g(x_s, s, u))
                                                   + D_2 (v_u + D_2/2 g(x_u, u, t))] / D,

x_u = X_{s,u}(x_s), D_1 = g_u - g_s, D_2 = g_t - g_u; the loss is the squared error summed over
the vocabulary (the mean times V), averaged over tokens, with the learned weight w(s) as above.

`one_call_loss` (FMLM stage two): a one-call predictor p_theta(x, s, t) whose Euler map
x + D (p_theta - x)/(1 - g_s) regresses onto the stage-one map (teacher FLM and frozen
correction), squared error summed over the vocabulary, averaged over tokens.

`map_times`: the pairs (s, t) of both stages, d ~ U[0, 1] (antithetic, clamped to >= 1e-6), s ~
U[0, 1 - d], t = s + d, with probability `boundary_probability` the pair (0, 1).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax._checks import concrete_value
from flowjax.losses.time_sampling import sample_time
from flowjax.paths.one_hot import ArgmaxTime
from flowjax.paths.affine import expand_time
from flowjax.solvers.flm import euler_map, taylor_map

LogitsFn = Callable[..., Float[Array, "B L V"]]  # (x, alpha, **kwargs) -> logits
MapLogitsFn = Callable[..., Float[Array, "B L V"]]  # (x, alpha_s, alpha_t, **kwargs) -> output
WeightFn = Callable[[Float[Array, "B"]], Float[Array, "B"]]  # alpha -> w


def _weighted(per_token: Float[Array, "B L"], alpha: Array, weight_fn: WeightFn | None) -> Array:
    if weight_fn is None:
        return jnp.mean(per_token)
    w = weight_fn(alpha)[:, None]
    return jnp.mean(jnp.exp(-w) * per_token + w)


def flm_loss(
    logits_fn: LogitsFn,
    x_1: Int[Array, "B L"],
    x_g: Float[Array, "B L V"],
    alpha: Float[Array, "B"],
    *,
    weight_fn: WeightFn | None = None,
    **model_kwargs,
) -> Float[Array, ""]:
    """Mean over tokens of -log softmax(logits_fn(x_g, alpha))[x_1] (module docstring)."""
    logits = logits_fn(x_g, alpha, **model_kwargs)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    ce = -jnp.take_along_axis(log_p, x_1[..., None], axis=-1)[..., 0]
    return _weighted(ce, alpha, weight_fn)


def map_times(
    key: jax.Array, batch_size: int, boundary_probability: float, distribution: str
) -> tuple[Float[Array, "B"], Float[Array, "B"]]:
    """(alpha_s, alpha_t) of a flow map's training pairs (module docstring)."""
    gap_key, start_key, boundary_key = jax.random.split(key, 3)
    d = jnp.maximum(sample_time(gap_key, batch_size, distribution=distribution), 1e-6)
    s = jax.random.uniform(start_key, (batch_size,)) * (1.0 - d)
    boundary = jax.random.uniform(boundary_key, (batch_size,)) < boundary_probability
    return jnp.where(boundary, 0.0, s), jnp.where(boundary, 1.0, s + d)


def check_map_times(alpha_s: Array, alpha_t: Array) -> None:
    """A flow map X_{s,t} runs forward: s <= t (checked when the times are concrete)."""
    s, t = concrete_value(alpha_s), concrete_value(alpha_t)
    if s is not None and t is not None and np.any(s > t):
        raise ValueError(
            f"A flow map X_(s,t) runs from s to a later time t, but s > t for "
            f"{int(np.sum(s > t))} pairs (e.g. s={float(np.max(s))}); draw the pairs with "
            "flowjax.losses.map_times or order them."
        )


def flow_map_loss(
    student_fn: MapLogitsFn,
    teacher_probs_fn: LogitsFn,
    time: ArgmaxTime,
    x_s: Float[Array, "B L V"],
    alpha_s: Float[Array, "B"],
    alpha_t: Float[Array, "B"],
    *,
    weight_fn: WeightFn | None = None,
    **model_kwargs,
) -> Float[Array, ""]:
    """FMLM stage one: the semigroup loss of the student's correction g_theta (module docstring).
    `student_fn(x, alpha_s, alpha_t)` -> g_theta (B, L, V); `teacher_probs_fn(x, alpha)` -> p_hat
    of the frozen FLM."""
    check_map_times(alpha_s, alpha_t)
    alpha_u = 0.5 * (alpha_s + alpha_t)
    g_s, g_u, g_t = (time.alpha_to_g(a) for a in (alpha_s, alpha_u, alpha_t))
    correction = lambda x, a, b: jax.lax.stop_gradient(student_fn(x, a, b, **model_kwargs))  # noqa: E731
    teacher = lambda x, a: jax.lax.stop_gradient(teacher_probs_fn(x, a, **model_kwargs))  # noqa: E731

    p_s = teacher(x_s, alpha_s)
    g_su = correction(x_s, alpha_s, alpha_u)
    x_u = taylor_map(x_s, p_s, g_su, g_s, g_u)
    p_u = teacher(x_u, alpha_u)
    g_ut = correction(x_u, alpha_u, alpha_t)
    # The two half-maps' displacements, x_t - x_s = D v_hat.
    displacement = (x_u - x_s) + (taylor_map(x_u, p_u, g_ut, g_u, g_t) - x_u)
    one_minus_s = 1.0 - expand_time(g_s, x_s)
    step = expand_time(g_t, x_s) - expand_time(g_s, x_s)
    target = x_s + one_minus_s * displacement / step
    prediction = p_s + one_minus_s * 0.5 * step * student_fn(x_s, alpha_s, alpha_t, **model_kwargs)
    per_token = jnp.sum(jnp.square(target - prediction), axis=-1)
    return _weighted(per_token, alpha_s, weight_fn)


def one_call_loss(
    student_probs_fn: MapLogitsFn,
    stage_one_map: Callable[..., Float[Array, "B L V"]],
    time: ArgmaxTime,
    x_s: Float[Array, "B L V"],
    alpha_s: Float[Array, "B"],
    alpha_t: Float[Array, "B"],
    **model_kwargs,
) -> Float[Array, ""]:
    """FMLM stage two: || X_{s,t}(x_s) - Euler map of p_theta(x_s, s, t) ||^2 summed over the
    vocabulary, mean over tokens. `stage_one_map(x, alpha_s, alpha_t, g_s, g_t)` is the frozen
    stage-one map; `student_probs_fn(x, alpha_s, alpha_t)` the student's probabilities."""
    check_map_times(alpha_s, alpha_t)
    g_s, g_t = time.alpha_to_g(alpha_s), time.alpha_to_g(alpha_t)
    target = jax.lax.stop_gradient(stage_one_map(x_s, alpha_s, alpha_t, g_s, g_t, **model_kwargs))
    prediction = euler_map(x_s, student_probs_fn(x_s, alpha_s, alpha_t, **model_kwargs), g_s, g_t)
    return jnp.mean(jnp.sum(jnp.square(target - prediction), axis=-1))
