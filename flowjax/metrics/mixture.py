"""Sample quality for Gaussian-mixture targets (`flowjax.paths.GaussianMixture`).

A mixture has no bounded support, so "inside the support" is taken as "within `num_std`
standard deviations of some component": the Mahalanobis distance
min_k sqrt((x - mu_k)^T S_k^-1 (x - mu_k)) <= num_std. A point drawn from one component of
dimension D is within it with probability P(chi^2_D <= num_std^2), for D = 2
1 - exp(-num_std^2 / 2) (98.9% at 3 standard deviations); a mixture's own samples score at
least that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.paths.analytic import GaussianMixture


def fraction_near_components(
    mixture: GaussianMixture, samples: np.ndarray, num_std: float = 3.0
) -> float:
    """The fraction of `samples` (n, D) within `num_std` standard deviations of a component."""
    x = jnp.asarray(samples, mixture.means.dtype)
    dim = mixture.means.shape[1]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != dim:
        raise ValueError(
            f"samples must have shape (n, {dim}) with n >= 1 for this mixture, got {x.shape}."
        )
    chol = jnp.linalg.cholesky(mixture.covs)  # (K, D, D)
    offsets = x[None] - mixture.means[:, None]  # (K, n, D)
    whitened = jax.vmap(
        lambda c, d: jax.scipy.linalg.solve_triangular(c, d.T, lower=True)
    )(chol, offsets)  # (K, D, n)
    squared = jnp.min(jnp.sum(whitened**2, axis=1), axis=0)  # (n,)
    return float(jnp.mean(squared <= num_std**2))
