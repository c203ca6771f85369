"""Distributions of the training time t.

Uniform t is the default of the Flow Matching Guide; its image recipes (section 5 and the
reference code's CIFAR-10 setting) use skewed (logit-normal) times t = sigmoid(N(m, s^2)),
m = -1.2, s = 1.2, which put more weight near the noise end. Masked diffusion language models
(MDLM, Sahoo et al., 2024, section 3.5; MD4, Shi et al., 2024) lower the variance of the ELBO
with low-discrepancy ("antithetic") times: one uniform u for the batch and t_i = (u + i/B) mod 1,
so that the B times are evenly spread over [0, 1) and each is still uniform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from flowjax._checks import check_count, check_float_dtype, concrete_value

TIME_DISTRIBUTIONS = ("uniform", "logit_normal", "low_discrepancy")


def sample_time(
    key: jax.Array,
    batch_size: int,
    *,
    distribution: str = "uniform",
    mean: float = -1.2,
    std: float = 1.2,
    t_max: float = 1.0,
    dtype=jnp.float32,
) -> Float[Array, "B"]:
    """Training times of shape (batch_size,) in [0, t_max).

    Args:
      distribution: "uniform", "logit_normal" (t = sigmoid(mean + std * N(0, 1))) or
        "low_discrepancy" (t_i = (u + i / batch_size) mod 1 with one uniform u).
      t_max: upper end of the range (e.g. 1 - 1e-3 for losses singular at t = 1).
    """
    batch_size = check_count(batch_size, "batch_size")
    t_max_value = concrete_value(t_max)
    if t_max_value is not None and not np.all((t_max_value > 0.0) & (t_max_value <= 1.0)):
        raise ValueError(f"t_max must lie in (0, 1], got {t_max!r}.")
    dtype = check_float_dtype(dtype)
    if distribution == "uniform":
        u = jax.random.uniform(key, (batch_size,), dtype=dtype)
    elif distribution == "low_discrepancy":
        offsets = jnp.arange(batch_size, dtype=dtype) / batch_size
        u = jnp.mod(jax.random.uniform(key, (), dtype=dtype) + offsets, 1.0)
    elif distribution == "logit_normal":
        u = jax.nn.sigmoid(mean + std * jax.random.normal(key, (batch_size,), dtype=dtype))
    else:
        raise ValueError(
            f"Unknown time distribution {distribution!r}; expected one of {TIME_DISTRIBUTIONS}."
        )
    return (u * t_max).astype(dtype)
