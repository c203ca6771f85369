"""The conditional flow-matching loss.

Flow Matching Guide and Code (Lipman et al., 2024), section 4.5, eq. 4.23 (CFM loss) and its
affine form eq. 4.64: E_{t, x_0, x_1} || u_t^theta(x_t) - dx_t ||^2, whose gradient equals that
of the marginal flow-matching loss. The network may also be trained to predict the data x_1
("target") or the noise x_0 ("epsilon"); eqs. 4.65-4.67 turn either into a velocity for sampling
(see `AffineProbPath.target_to_velocity` etc.).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from flowjax._checks import flat_batch
from flowjax.paths.affine import AffineProbPath, PathSample

REGRESSION_TARGETS: dict[str, Callable[[PathSample], jax.Array]] = {
    "velocity": lambda sample: sample.dx_t,
    "target": lambda sample: sample.x_1,
    "epsilon": lambda sample: sample.x_0,
}


def cfm_loss_per_sample(
    model_fn: Callable[..., jax.Array],
    path: AffineProbPath,
    x_0: Float[Array, "B *event"],
    x_1: Float[Array, "B *event"],
    t: Float[Array, "B"],
    *,
    prediction: str = "velocity",
    **model_kwargs: Any,
) -> Float[Array, "B"]:
    """Squared error ||model(x_t, t) - target||^2 summed over the event, shape (B,).

    Args:
      model_fn: the network, called as model_fn(x_t, t, **model_kwargs) with t of shape (B,).
      path: the affine path that draws (x_t, dx_t).
      x_0, x_1: source and data samples, shape (B, *event).
      t: times in [0, 1], shape (B,).
      prediction: "velocity", "target" (x_1) or "epsilon" (x_0).
    """
    return cfm_regression(model_fn, path, x_0, x_1, t, prediction=prediction, **model_kwargs)[0]


def cfm_regression(
    model_fn: Callable[..., jax.Array],
    path: AffineProbPath,
    x_0: Float[Array, "B *event"],
    x_1: Float[Array, "B *event"],
    t: Float[Array, "B"],
    *,
    prediction: str = "velocity",
    **model_kwargs: Any,
) -> tuple[Float[Array, "B"], Float[Array, "B *event"], PathSample]:
    """`cfm_loss_per_sample` with what it computed on the way: (the squared error (B,), the
    model's output, the path sample (x_t, t, ...)), for a loss that also reads the output."""
    if prediction not in REGRESSION_TARGETS:
        raise ValueError(
            f"Unknown prediction {prediction!r}; expected one of {tuple(REGRESSION_TARGETS)}."
        )
    sample = path.sample(x_0, x_1, t)
    output = model_fn(sample.x_t, sample.t, **model_kwargs)
    if output.shape != sample.x_t.shape:
        raise ValueError(
            f"The model must return an array of the shape of x_t {sample.x_t.shape}, "
            f"got {output.shape}."
        )
    error = (output - REGRESSION_TARGETS[prediction](sample)) ** 2
    return flat_batch(error).sum(axis=1), output, sample


def cfm_loss(
    model_fn: Callable[..., jax.Array],
    path: AffineProbPath,
    x_0: Float[Array, "B *event"],
    x_1: Float[Array, "B *event"],
    t: Float[Array, "B"],
    *,
    prediction: str = "velocity",
    **model_kwargs: Any,
) -> Float[Array, ""]:
    """The batch mean of the CFM loss, per event coordinate (the usual MSE), a scalar."""
    shape = jnp.shape(x_1)
    if len(shape) == 0 or math.prod(shape) == 0:
        raise ValueError(
            "cfm_loss is a mean over the samples and coordinates of x_1, which needs at least one "
            f"of each; got x_1.shape={shape}."
        )
    per_sample = cfm_loss_per_sample(
        model_fn, path, x_0, x_1, t, prediction=prediction, **model_kwargs
    )
    event_size = x_1[0].size
    return jnp.mean(per_sample) / event_size
