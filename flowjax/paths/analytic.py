"""Closed-form marginals of affine paths from a standard-normal source to a Gaussian mixture.

Flow Matching Guide and Code (Lipman et al., 2024), section 4.4 (marginal velocity as the
posterior expectation of the conditional velocity, eq. 4.11) applied to the affine path
x_t = alpha_t x_1 + sigma_t x_0 with x_0 ~ N(0, I) and x_1 ~ sum_k pi_k N(mu_k, S_k). Each
component stays Gaussian along the path,

    p_t = sum_k pi_k N(alpha_t mu_k, C_k(t)),   C_k(t) = alpha_t^2 S_k + sigma_t^2 I,

and the marginal velocity is the responsibility-weighted sum of the component velocities

    u_t(x) = sum_k r_k(x, t) [d_alpha_t mu_k + (alpha_t d_alpha_t S_k + sigma_t d_sigma_t I)
                              C_k(t)^-1 (x - alpha_t mu_k)].

These give exact velocities (no training error) for testing solvers, likelihoods and samplers,
and exact densities p_t for checking the continuity equation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from flowjax._checks import check_count, concrete_value
from flowjax.paths.affine import AffineProbPath


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights[k] N(means[k], covs[k]); weights (K,), means (K, D), covs (K, D, D)."""

    weights: Float[Array, "K"]
    means: Float[Array, "K D"]
    covs: Float[Array, "K D D"]

    def __post_init__(self):
        for name in ("weights", "means", "covs"):
            object.__setattr__(self, name, jnp.asarray(getattr(self, name)))
        if self.means.ndim != 2 or self.weights.shape != self.means.shape[:1] or (
            self.covs.shape != self.means.shape + self.means.shape[1:]
        ):
            raise ValueError(
                f"GaussianMixture needs weights (K,), means (K, D), covs (K, D, D); got "
                f"weights {self.weights.shape}, means {self.means.shape}, covs {self.covs.shape}."
            )
        weights, covs = concrete_value(self.weights), concrete_value(self.covs)
        if weights is not None and (
            np.any(~(weights >= 0)) or not np.isclose(weights.sum(dtype=np.float64), 1.0, atol=1e-5)
        ):
            raise ValueError(
                f"GaussianMixture weights must be >= 0 and sum to 1, got {weights} (sum "
                f"{weights.sum(dtype=np.float64):.6g})."
            )
        if covs is not None and covs.size:
            if not np.allclose(covs, np.swapaxes(covs, -1, -2), atol=1e-6):
                raise ValueError(f"GaussianMixture covs must be symmetric matrices, got {covs}.")
            smallest = np.linalg.eigvalsh(covs.astype(np.float64)).min()
            if not smallest > 0:
                raise ValueError(
                    "GaussianMixture covs must be positive definite (K, D, D) matrices; got one "
                    f"with the eigenvalue {smallest:.3g}."
                )

    @classmethod
    def isotropic(
        cls,
        weights: Float[Array, "K"],
        means: Float[Array, "K D"],
        std: float | Float[Array, ""] | Float[Array, "K"],
    ) -> "GaussianMixture":
        """Components N(means[k], std^2 I) (std a scalar or one per component)."""
        means = jnp.asarray(means)
        k, d = means.shape
        std = jnp.broadcast_to(jnp.asarray(std, means.dtype), (k,))
        covs = (std**2)[:, None, None] * jnp.eye(d, dtype=means.dtype)
        return cls(jnp.asarray(weights, means.dtype), means, covs)

    def sample(self, key: Array, num: int) -> Float[Array, "num D"]:
        """`num` samples, shape (num, D)."""
        num = check_count(num, "num")
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.choice(k_comp, self.weights.shape[0], (num,), p=self.weights)
        chol = jnp.linalg.cholesky(self.covs)[comp]
        noise = jax.random.normal(k_noise, self.means[comp].shape, self.means.dtype)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol, noise)

    def log_prob(self, x: Float[Array, "B D"]) -> Float[Array, "B"]:
        """log density of x of shape (B, D), shape (B,)."""
        return _mixture_log_prob(self.weights, self.means, self.covs, x)


def _gaussian_log_prob(mean: Array, cov: Array, x: Array) -> Array:
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    d = mean.shape[-1]
    return -0.5 * (jnp.sum(z**2, axis=0) + log_det + d * jnp.log(2.0 * jnp.pi))


def _mixture_log_prob(weights, means, covs, x):
    per_comp = jax.vmap(_gaussian_log_prob, in_axes=(0, 0, None))(means, covs, x)  # (K, B)
    return jax.scipy.special.logsumexp(per_comp + jnp.log(weights)[:, None], axis=0)


def _per_sample_time(t: Array, x: Array) -> Array:
    if jnp.shape(t) not in ((), x.shape[:1]):
        raise ValueError(
            f"t must be a scalar or of shape (B,) = ({x.shape[0]},), got t.shape={jnp.shape(t)}."
        )
    t = jnp.asarray(t, x.dtype)
    return jnp.broadcast_to(t, x.shape[:1])


def _component_terms(path: AffineProbPath, mixture: GaussianMixture, x: Array, t: Array):
    """Per sample and component: log N(x; alpha mu_k, C_k(t)) and the component velocity.

    C_k(t) = alpha^2 S_k + sigma^2 I shares the eigenvectors Q_k of S_k = Q_k diag(l_k) Q_k^T,
    so with one eigendecomposition of the K covariances (independent of x and t) every solve
    and determinant is elementwise: C_k^-1 = Q_k diag(1 / (alpha^2 l_k + sigma^2)) Q_k^T.
    Returns (log densities (B, K), velocities (B, K, D)).
    """
    if jnp.ndim(x) != 2 or x.shape[1] != mixture.means.shape[1]:
        raise ValueError(
            f"x must be a batch of points (B, D) with the mixture's D = {mixture.means.shape[1]}, "
            f"got x.shape={jnp.shape(x)}."
        )
    eigvals, eigvecs = jnp.linalg.eigh(mixture.covs)  # (K, D), (K, D, D)
    a, s, da, ds = (v[:, None, None] for v in path.scheduler(_per_sample_time(t, x)))
    var = a**2 * eigvals[None] + s**2  # (B, K, D): eigenvalues of C_k(t)
    centred = x[:, None, :] - a * mixture.means[None]  # (B, K, D)
    z = jnp.einsum("bkd,kde->bke", centred, eigvecs)  # coordinates in the eigenbasis
    dim = x.shape[-1]
    log_n = -0.5 * (jnp.sum(z**2 / var + jnp.log(var), axis=-1) + dim * jnp.log(2.0 * jnp.pi))
    gain = (a * da * eigvals[None] + s * ds) / var  # (B, K, D)
    velocity = da * mixture.means[None] + jnp.einsum("bke,kde->bkd", gain * z, eigvecs)
    return log_n, velocity


def marginal_log_prob(
    path: AffineProbPath,
    mixture: GaussianMixture,
    x: Float[Array, "B D"],
    t: Float[Array, ""] | Float[Array, "B"],
) -> Float[Array, "B"]:
    """log p_t(x) for x of shape (B, D) and t scalar or (B,); shape (B,)."""
    log_n, _ = _component_terms(path, mixture, x, t)
    return jax.scipy.special.logsumexp(log_n + jnp.log(mixture.weights), axis=-1)


def marginal_velocity(
    path: AffineProbPath,
    mixture: GaussianMixture,
    x: Float[Array, "B D"],
    t: Float[Array, ""] | Float[Array, "B"],
) -> Float[Array, "B D"]:
    """The exact marginal velocity u_t(x) for x of shape (B, D) and t scalar or (B,)."""
    log_n, velocities = _component_terms(path, mixture, x, t)
    resp = jax.nn.softmax(log_n + jnp.log(mixture.weights), axis=-1)  # (B, K)
    return jnp.einsum("bk,bkd->bd", resp, velocities)
