"""Categorical draws by the inverse CDF, shared by discrete paths, jump processes and samplers.

One uniform per row and a cumulative sum over the categories in a chosen floating dtype: index k
is drawn with probability w_k / sum(w), an index of weight 0 is never drawn. float64 (which needs
`jax.enable_x64`) removes the float32 rounding that makes categories of probability below ~1e-7
of the total unreachable or mis-weighted (the sampling error users of the Flow Matching Guide's
text example met, flow_matching issue 27).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def sample_categorical(
    key: jax.Array, weights: Float[Array, "*batch V"], dtype=jnp.float32
) -> Int[Array, "*batch"]:
    """Draws one index per row of non-negative, unnormalised weights (..., V), int32 (...).

    Inverse CDF in `dtype`: index k is drawn with probability weights[k] / sum(weights) and an
    index of weight 0 is never drawn. A row of zeros gives index 0, and so does a row with NaN.
    Subnormal weights count as 0 where the backend flushes them (XLA on CPU).
    """
    weights = jnp.asarray(weights)
    if weights.ndim == 0 or weights.shape[-1] == 0:
        raise ValueError(
            f"weights must have shape (..., V) with V >= 1 categories, got weights.shape="
            f"{weights.shape}."
        )
    dtype = check_categorical_dtype(dtype)
    cdf = jnp.cumsum(weights.astype(dtype), axis=-1)
    # u in (0, 1], so that u * total lies in (0, total]: the first k with cdf[k] >= u * total,
    # which has a positive weight unless u * total underflows to 0 (weights too small for
    # `dtype`): only positive weights are eligible.
    u = 1.0 - jax.random.uniform(key, weights.shape[:-1], dtype)
    threshold = (u * cdf[..., -1])[..., None]
    eligible = (cdf >= threshold) & (weights > 0)
    return jnp.argmax(eligible, axis=-1).astype(jnp.int32)


def check_categorical_dtype(dtype) -> np.dtype:
    """`dtype` as a NumPy floating dtype usable now (float64 only with 64-bit JAX enabled)."""
    dtype = np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype for categorical sampling, got {dtype}.")
    if dtype.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "dtype=float64 categorical sampling needs 64-bit JAX: run it inside "
            "`with jax.enable_x64(True):` or set JAX_ENABLE_X64=1."
        )
    return dtype
