"""A heteroscedastic classification head: Gaussian logit noise with a low-rank-plus-diagonal
covariance, Monte Carlo softmax with a temperature.

Collier et al., 2021, "Correlated Input-Dependent Label Noise in Large-Scale Image
Classification" (CVPR), eq. 3-6: the logits u = mu(h) + V(h) eps_R + d(h) o eps_K, with
eps_R ~ N(0, I_R), eps_K ~ N(0, I_K), so Cov(u) = V V^T + diag(d^2) (V (K, R) low rank, d
softplus-positive), and

    p(y | h) ~= 1/S sum_s softmax(u_s / tau)_y

over S samples; training minimises -log of this Monte Carlo average. With V = 0 and d = 0 the
head is softmax(mu / tau).

Shapes: h (B, D) -> probabilities (B, K); randomness from one `jax.random` key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class HeteroscedasticHead(nnx.Module):
    """The head of the module docstring: `num_factors` = R, `temperature` = tau,
    `mc_samples` = S."""

    def __init__(self, in_features: int, num_classes: int, *, num_factors: int = 3,
                 temperature: float = 1.5, mc_samples: int = 1000, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.mean = nnx.Linear(in_features, num_classes, dtype=dtype, rngs=rngs)
        self.factors = nnx.Linear(in_features, num_classes * num_factors, dtype=dtype, rngs=rngs)
        self.diagonal = nnx.Linear(in_features, num_classes, dtype=dtype, rngs=rngs)
        self.num_factors, self.temperature, self.mc_samples = num_factors, temperature, mc_samples

    def log_probs(self, h: jax.Array, key: jax.Array) -> jax.Array:
        """log of the Monte Carlo predictive, (B, K)."""
        mu = self.mean(h).astype(jnp.float32)
        b, k = mu.shape
        v = self.factors(h).astype(jnp.float32).reshape(b, k, self.num_factors)
        d = jax.nn.softplus(self.diagonal(h).astype(jnp.float32))
        low, diag = jax.random.split(key)
        eps_r = jax.random.normal(low, (self.mc_samples, b, self.num_factors))
        eps_k = jax.random.normal(diag, (self.mc_samples, b, k))
        u = mu + jnp.einsum("bkr,sbr->sbk", v, eps_r) + d * eps_k
        log_p = jax.nn.log_softmax(u / self.temperature, axis=-1)
        return jax.nn.logsumexp(log_p, axis=0) - jnp.log(self.mc_samples)
