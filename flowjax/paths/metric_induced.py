"""The metric-induced discrete path and its closed-form kinetic-optimal velocity.

Shaul et al. (2024), "Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective",
metric-induced probability paths: given a distance d on the vocabulary (d(x, y) = 0 iff x = y)
and a schedule beta_t rising from beta_0 = 0 to beta_1 = infinity, the conditional path

    p_t(x | x_1) = softmax_x(-beta_t d(x, x_1))

goes from the uniform distribution at t = 0 to delta_{x_1} at t = 1, concentrating around x_1
in the geometry of d (adjacent bins of a quantised coordinate, nearby pixel intensities, close
codebook entries). Its kinetic-optimal velocity (weights tau = p) is

    u_t(x, z | x_1) = p_t(x | x_1) beta'_t [d(z, x_1) - d(x, x_1)]_+ ,   x != z,

so mass only ever moves to states closer to x_1. (In the general formula of
`flowjax.paths.kinetic_optimal`, pdot_t(x) = beta'_t p_t(x) (E_{p_t}[d] - d(x, x_1)), hence
p(z) pdot(x) - p(x) pdot(z) = beta' p(x) p(z) (d(z, x_1) - d(x, x_1)).) With a posterior
p_{1|t}(x_1 | x_t) the marginal velocity is the posterior mean of the conditional one,

    u_t(x, z) = beta'_t sum_{x_1} p_{1|t}(x_1 | x_t) p_t(x | x_1) [d(z, x_1) - d(x, x_1)]_+ ,

which costs O(V^2) per token (the mixture path's costs O(V)).

Schedule: beta_t = c (t / (1 - t))^a (`PowerBeta`); distance: d(x, y) = (scale |x - y|)^power
between token ids of an ordered vocabulary (`TokenDistance`), or any callable with that
signature. Shapes and conventions are those of `flowjax.paths.discrete`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax._checks import check_logits, check_regular
from flowjax.paths.affine import expand_time
from flowjax.paths.discrete import (
    DiscretePathSample,
    UniformSource,
    check_path_sample_args,
    check_token_args,
    with_exit_rate,
)


@dataclasses.dataclass(frozen=True)
class PowerBeta:
    """beta_t = c (t / (1 - t))^a, with beta_0 = 0 and beta_1 = infinity.

    For a < 1, beta'_t = c a t^(a - 1) (1 - t)^(-a - 1) is infinite at t = 0; it is evaluated at
    max(t, t_min) so that velocities stay finite there (beta itself is exact).
    """

    c: float = 3.0
    a: float = 0.9
    t_min: float = 1e-4

    def __post_init__(self):
        if not (self.c > 0 and self.a > 0 and 0 <= self.t_min < 1):
            raise ValueError(
                f"PowerBeta needs c > 0, a > 0 and 0 <= t_min < 1, got c={self.c!r}, "
                f"a={self.a!r}, t_min={self.t_min!r}."
            )

    def __call__(
        self, t: Float[Array, "*shape"]
    ) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
        """(beta_t, d beta_t / dt), of the shape of t."""
        t = jnp.asarray(t)
        beta = self.c * (t / (1.0 - t)) ** self.a
        s = jnp.maximum(t, self.t_min)
        d_beta = self.c * self.a * s ** (self.a - 1.0) * (1.0 - s) ** (-self.a - 1.0)
        return beta, d_beta


@dataclasses.dataclass(frozen=True)
class TokenDistance:
    """d(x, y) = (scale |x - y|)^power between the ids of an ordered vocabulary."""

    scale: float = 1.0
    power: float = 1.0

    def __post_init__(self):
        if not (self.scale > 0 and self.power > 0):
            raise ValueError(
                f"TokenDistance needs scale > 0 and power > 0, got {self.scale!r}, {self.power!r}."
            )

    def __call__(
        self, x: Int[Array, "*#shape"], y: Int[Array, "*#shape"]
    ) -> Float[Array, "*shape"]:
        return (self.scale * jnp.abs(x - y)) ** self.power


MAX_EMBEDDING_VOCAB = 8192
"""The largest vocabulary of `EmbeddingDistance`, whose (V, V) table is held in memory."""


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingDistance:
    """d(x, y) = (scale ||e_x - e_y||)^power between the embeddings e (V, d) of the tokens (Shaul
    et al., 2024: metric-induced paths in the geometry of token or codebook embeddings), read
    from a (V, V) table computed once. Vocabularies up to `MAX_EMBEDDING_VOCAB` tokens."""

    embeddings: np.ndarray
    scale: float = 1.0
    power: float = 1.0

    def __post_init__(self):
        e = np.asarray(self.embeddings, np.float64)
        if e.ndim != 2 or not 2 <= e.shape[0] <= MAX_EMBEDDING_VOCAB or not np.isfinite(e).all():
            raise ValueError(
                f"embeddings must be a finite (V, d) array with 2 <= V <= {MAX_EMBEDDING_VOCAB}, "
                f"got shape {e.shape}."
            )
        if not (self.scale > 0 and self.power > 0):
            raise ValueError(
                f"EmbeddingDistance needs scale > 0 and power > 0, got {self.scale!r}, "
                f"{self.power!r}."
            )
        squared = (e**2).sum(1)
        gram = np.maximum(squared[:, None] + squared[None, :] - 2.0 * e @ e.T, 0.0)
        table = (self.scale * np.sqrt(gram)) ** self.power
        np.fill_diagonal(table, 0.0)
        object.__setattr__(self, "table", table)  # float64; jnp takes it at its precision

    def __call__(
        self, x: Int[Array, "*#shape"], y: Int[Array, "*#shape"]
    ) -> Float[Array, "*shape"]:
        return jnp.asarray(self.table)[x, y]


@dataclasses.dataclass(frozen=True)
class MetricInducedProbPath:
    """p_t(x | x_1) = softmax_x(-beta_t d(x, x_1)) per token, from uniform to delta_{x_1}.

    Attributes:
      vocab_size: V.
      distance: d(x, y) for integer token arrays x, y (broadcasting), with d(x, x) = 0 and
        d > 0 elsewhere.
      beta: t -> (beta_t, beta'_t).
    """

    vocab_size: int
    distance: Callable[[Array, Array], Array] = TokenDistance()
    beta: Callable[[Array], tuple[Array, Array]] = PowerBeta()

    def __post_init__(self):
        if not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {self.vocab_size!r}.")

    @property
    def source(self) -> UniformSource:
        """p_0: the path starts uniform (beta_0 = 0)."""
        return UniformSource(self.vocab_size)

    def _distances_to(self, x_1: Array) -> Array:
        """d(y, x_1) for every token y, shape x_1.shape + (V,)."""
        return self.distance(jnp.arange(self.vocab_size), x_1[..., None])

    def _distance_matrix(self) -> Array:
        """D[y, k] = d(y, k), shape (V, V)."""
        tokens = jnp.arange(self.vocab_size)
        return self.distance(tokens[:, None], tokens[None, :])

    def _beta(self, t: Array, x: Array) -> tuple[Array, Array]:
        """(beta_t, beta'_t) broadcastable against tokens x."""
        return self.beta(expand_time(t, x))

    def _rate_scale(self, t: Array, x: Array) -> Array:
        """beta'_t broadcastable against tokens x; a concrete t where it is infinite (t = 1)
        raises a ValueError."""
        _, d_beta = self._beta(t, x)
        check_regular(t, "The rates of the metric-induced path", finite=(d_beta,))
        return d_beta

    @staticmethod
    def _log_softmax_neg(beta: Array, d: Array, axis: int) -> Array:
        """log softmax(-beta d) along `axis`, exact at beta = infinity (d = 0 stays at 0)."""
        return jax.nn.log_softmax(-jnp.where(d > 0, beta * d, 0.0), axis=axis)

    def log_probs(
        self, x_1: Int[Array, "B *event"], t: Float[Array, ""] | Float[Array, "B"]
    ) -> Float[Array, "B *event V"]:
        """log p_t(. | x_1) per token, shape x_1.shape + (V,)."""
        check_token_args(self.vocab_size, t, x_1=x_1)
        beta, _ = self._beta(t, x_1)
        return self._log_softmax_neg(beta[..., None], self._distances_to(x_1), axis=-1)

    def probs(
        self, x_1: Int[Array, "B *event"], t: Float[Array, ""] | Float[Array, "B"]
    ) -> Float[Array, "B *event V"]:
        """p_t(. | x_1) per token, shape x_1.shape + (V,)."""
        return jnp.exp(self.log_probs(x_1, t))

    def sample(
        self,
        key: Array,
        x_0: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, "B"],
    ) -> DiscretePathSample:
        """x_t ~ p_t(. | x_1) per token.

        The path does not depend on x_0 (its source is uniform and it is not coupled to x_1);
        x_0 is taken, and checked, so that all discrete paths share one signature.
        """
        x_0, x_1, t = jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t)
        check_path_sample_args(x_0, x_1, t, self.vocab_size)
        x_t = jax.random.categorical(key, self.log_probs(x_1, t)).astype(x_1.dtype)
        return DiscretePathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t)

    def posterior_logits(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """A network's logits plus log p_t(x_t^i | x_1^i = k) = -beta_t d(x_t^i, k) - log Z_t(k)
        for every k (Bayes' rule, as for `MixtureDiscreteProbPath.posterior_logits`): the
        posterior then concentrates on x_t^i at the path's own rate as t -> 1. Shape
        x_t.shape + (V,)."""
        check_logits(logits, x_t, self.vocab_size)
        check_token_args(self.vocab_size, t, x_t=x_t)
        beta, _ = self._beta(t, x_t)
        matrix = self._distance_matrix()
        scaled = jnp.where(matrix > 0, beta[..., None, None] * matrix, 0.0)
        log_norm = jax.nn.logsumexp(-scaled, axis=-2)  # log Z_t(k), (..., V_k)
        d = matrix[x_t]  # d(x_t^i, k), (..., V_k)
        return logits - jnp.where(d > 0, beta[..., None] * d, 0.0) - log_norm

    def conditional_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """u_t(y, x_t | x_1) = p_t(y | x_1) beta'_t [d(x_t, x_1) - d(y, x_1)]_+, shape (..., V)."""
        check_token_args(self.vocab_size, t, x_t=x_t, x_1=x_1)
        d_beta = self._rate_scale(t, x_t)
        d = self._distances_to(x_1)
        d_current = jnp.take_along_axis(d, x_t[..., None], axis=-1)
        gain = jax.nn.relu(d_current - d)
        return with_exit_rate(d_beta[..., None] * self.probs(x_1, t) * gain, x_t)

    def _posterior_terms(self, logits: Array, x_t: Array, t: Array):
        """log q(k), log p_t(y | k) and the gain d(x_t, k) - d(y, k), as (..., V_y, V_k)."""
        check_logits(logits, x_t, self.vocab_size)
        check_token_args(self.vocab_size, t, x_t=x_t)
        beta, _ = self._beta(t, x_t)
        d_beta = self._rate_scale(t, x_t)
        matrix = self._distance_matrix()
        log_p = self._log_softmax_neg(beta[..., None, None], matrix, axis=-2)
        gain = matrix[x_t][..., None, :] - matrix
        return jax.nn.log_softmax(logits, axis=-1)[..., None, :], log_p, gain, d_beta[..., None]

    def posterior_to_velocity(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """u_t(., x_t) = beta'_t sum_k q(k) p_t(. | k) [d(x_t, k) - d(., k)]_+, shape (..., V).

        Args:
          logits: posterior logits over x_1, shape x_t.shape + (V,).
          x_t: current tokens, shape (B, *event).
          t: shape (B,) or a scalar.
        """
        log_q, log_p, gain, d_beta = self._posterior_terms(logits, x_t, t)
        rates = jnp.sum(jnp.exp(log_q + log_p) * jax.nn.relu(gain), axis=-1)
        return with_exit_rate(d_beta * rates, x_t)

    def posterior_to_log_velocity(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """log u_t(y, x_t) for y != x_t, -inf where the rate is 0, shape (..., V)."""
        log_q, log_p, gain, d_beta = self._posterior_terms(logits, x_t, t)
        closer = gain > 0
        terms = jnp.where(closer, log_q + log_p + jnp.log(jnp.where(closer, gain, 1.0)), -jnp.inf)
        reachable = closer.any(axis=-1)
        # Rows with no positive term would give logsumexp a NaN gradient: fill them, then mask.
        log_sum = jax.nn.logsumexp(jnp.where(reachable[..., None], terms, 0.0), axis=-1)
        return jnp.where(reachable, jnp.log(d_beta) + log_sum, -jnp.inf)

    def divergence_free_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """The corrector beta'_t p_t(. | x_1), with its exit rate on the diagonal, (..., V)."""
        check_token_args(self.vocab_size, t, x_t=x_t, x_1=x_1)
        d_beta = self._rate_scale(t, x_t)
        return with_exit_rate(d_beta[..., None] * self.probs(x_1, t), x_t)
