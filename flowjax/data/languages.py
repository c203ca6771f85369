"""Synthetic languages whose likelihood and entropy are known exactly.

A language model's perplexity on natural text has no known floor; on these languages it has one,
exp(H(X_1..L) / L), and the log-likelihood of any sample under the true process is computable,
which gives the EXACT generative perplexity of a model's samples (what GPT-2 only approximates
on natural text) and their exact validity.

- `MarkovLanguage`: a random order-k Markov chain over V symbols. Each of the V^k contexts has a
  next-symbol distribution drawn from a symmetric Dirichlet(concentration) (small concentrations
  give peaked, low-entropy rows) from `language_seed`; sequences of L tokens start from the
  stationary distribution of the k-gram chain, so the process is stationary and

      H(X_1..L) = H(pi_k) + (L - k) h,   h = sum_s pi_k(s) H(T[s]),

  with pi_k the stationary k-gram distribution (a linear solve, or power iteration for many contexts) and h the
  entropy rate.
- `NoisyCopyLanguage`: L = 2n tokens; the first n are i.i.d. from a unigram distribution p drawn
  from a Dirichlet(concentration), and the second n copy them, each token replaced by a uniform
  one with probability `noise`. The dependence spans half the sequence (bidirectional models and
  few-step samplers feel it), and

      H(X_1..L) = n H(p) + n H_c,  H_c = -(1 - e + e/V) log(1 - e + e/V) - (V - 1)(e/V) log(e/V),

  e = noise; log p(x) = sum_i log p(a_i) + sum_i log((1 - e) [b_i = a_i] + e / V).
- `RepeatedTokenLanguage`: one token v uniform over the V symbols, repeated L times (the
  synthetic task of the Infinite Mask Diffusion Model paper, IMDM, with V = 50,000 and L = 10).
  H(X_1..L) = log V, log p(x) = -log V if all L tokens are equal and -inf otherwise. Every
  position's marginal is uniform while any one token fixes the rest, so a sampler that unmasks
  all L positions of the masked sequence at once from per-position marginals makes a valid
  sequence only with probability V^-(L-1) (`flowjax.metrics.factorization`).

Every language samples global batch `index` from numpy.random.default_rng([seed, index]) (the
toys' convention, so the data pipeline's resume and per-process rows hold), and scores tokens
(B, L) in float64 with NumPy or, inside a jitted evaluation, with JAX (`log_prob_jax`).
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of distributions along the last axis."""
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=-1)


def _check_tokens(tokens: np.ndarray, vocab_size: int, seq_len: int) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != seq_len:
        raise ValueError(f"tokens must have shape (B, {seq_len}), got {tokens.shape}.")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"tokens must be integer ids, got dtype {tokens.dtype}.")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"tokens hold ids in [{tokens.min()}, {tokens.max()}], outside the language's "
            f"vocabulary [0, {vocab_size})."
        )
    return tokens


def _check_settings(vocab_size: int, seq_len: int, concentration: float) -> None:
    if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
    if not (isinstance(seq_len, (int, np.integer)) and seq_len >= 1):
        raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}.")
    if not concentration > 0:
        raise ValueError(f"concentration must be > 0, got {concentration!r}.")


DIRECT_SOLVE_CONTEXTS = 2048
"""Up to this many contexts V^k the stationary distribution is solved for directly."""


@dataclasses.dataclass(frozen=True)
class MarkovLanguage:
    """A stationary random order-k Markov chain over `vocab_size` symbols (module docstring)."""

    vocab_size: int
    seq_len: int
    order: int = 1
    concentration: float = 0.5
    language_seed: int = 0

    def __post_init__(self):
        _check_settings(self.vocab_size, self.seq_len, self.concentration)
        if not (isinstance(self.order, (int, np.integer)) and 1 <= self.order <= self.seq_len):
            raise ValueError(f"order must be an int in [1, seq_len], got {self.order!r}.")
        if self.vocab_size**self.order > 2**20:
            raise ValueError(
                f"vocab_size^order = {self.vocab_size}^{self.order} contexts is too many (the "
                "transition table has one row per context); lower the order or the vocabulary."
            )

    @cached_property
    def transitions(self) -> np.ndarray:
        """T[context, next] (V^k, V) float64; context = sum_j x_j V^(k-1-j) of the last k."""
        rng = np.random.default_rng([self.language_seed, 0x4D41524B])
        alpha = np.full(self.vocab_size, self.concentration)
        return rng.dirichlet(alpha, size=self.vocab_size**self.order)

    @cached_property
    def stationary(self) -> np.ndarray:
        """pi_k over the V^k contexts, (V^k,). Up to `DIRECT_SOLVE_CONTEXTS` contexts: the
        solution of pi (P - I) = 0, sum pi = 1 for the k-gram chain P (a dense solve; power
        iteration needs about 1 / (1 - lambda_2) steps, millions where a small concentration
        makes a context nearly absorbing). Beyond: power iteration of the lazy chain (P + I) / 2
        (the same stationary distribution, also for a periodic chain) to 1e-15."""
        v, k = self.vocab_size, self.order
        n = v**k
        successors = ((np.arange(n) * v) % n)[:, None] + np.arange(v)[None, :]  # s, y -> s'
        if n <= DIRECT_SOLVE_CONTEXTS:
            chain = np.zeros((n, n))
            np.put_along_axis(chain, successors, self.transitions, axis=1)
            system = chain.T - np.eye(n)
            system[n - 1] = 1.0  # one balance equation is redundant: normalise instead
            try:
                pi = np.linalg.solve(system, np.eye(n)[n - 1])
            except np.linalg.LinAlgError:  # a split chain: no unique solution
                pi = np.full(n, np.nan)
            if np.all(np.isfinite(pi)) and np.abs(chain.T @ pi - pi).max() < 1e-12:
                pi = np.clip(pi, 0.0, None)
                return pi / pi.sum()
        else:
            pi = np.full(n, 1.0 / n)
            for _ in range(100_000):
                step = np.zeros_like(pi)
                np.add.at(step, successors.ravel(), (pi[:, None] * self.transitions).ravel())
                if np.abs(step - pi).max() < 1e-15:
                    return step
                pi = 0.5 * (pi + step)
        raise ValueError(
            f"The Markov language of concentration={self.concentration}, order={self.order} and "
            f"language_seed={self.language_seed} has no stationary distribution that flowjax can "
            "compute (transitions of probability 0 split the chain, or it mixes too slowly); use "
            "a larger concentration or another language_seed."
        )

    @property
    def entropy_rate(self) -> float:
        """h = sum_s pi_k(s) H(T[s]) in nats per token."""
        return float(self.stationary @ _entropy(self.transitions))

    @property
    def entropy(self) -> float:
        """H(X_1..L) in nats (module docstring)."""
        return float(_entropy(self.stationary)) + (self.seq_len - self.order) * self.entropy_rate

    @property
    def perplexity_floor(self) -> float:
        """exp(H(X_1..L) / L): the perplexity of the true process on its own sequences."""
        return math.exp(self.entropy / self.seq_len)

    def _context_index(self, tokens: np.ndarray) -> np.ndarray:
        """The context index of every window of k tokens, (B, L - k + 1)."""
        k, v = self.order, self.vocab_size
        windows = np.lib.stride_tricks.sliding_window_view(tokens, k, axis=1)
        return (windows * v ** np.arange(k - 1, -1, -1)).sum(axis=-1)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """(batch, L) int32 sequences of the chain."""
        v, k = self.vocab_size, self.order
        context = rng.choice(v**k, size=batch, p=self.stationary)
        first = (context[:, None] // v ** np.arange(k - 1, -1, -1)) % v
        out = np.empty((batch, self.seq_len), np.int64)
        out[:, :k] = first
        cdf = np.cumsum(self.transitions, axis=1)
        for i in range(k, self.seq_len):
            u = rng.random(batch)[:, None]
            nxt = np.minimum((cdf[context] < u).sum(axis=1), v - 1)
            out[:, i] = nxt
            context = (context * v) % v**k + nxt
        return out.astype(np.int32)

    def log_prob(self, tokens: np.ndarray) -> np.ndarray:
        """log p(x_1..L) of each sequence (B,), float64."""
        tokens = _check_tokens(tokens, self.vocab_size, self.seq_len)
        contexts = self._context_index(tokens)
        nxt = tokens[:, self.order :]
        with np.errstate(divide="ignore"):  # log 0 = -inf: a sequence the language never makes
            log_start = np.log(self.stationary[contexts[:, 0]])
            steps = np.log(self.transitions[contexts[:, :-1], nxt]).sum(axis=1)
        return log_start + steps

    def log_prob_jax(self, tokens: Int[Array, "B L"]) -> Float[Array, "B"]:
        """`log_prob` in JAX (float32 unless 64-bit JAX is on), for use under jit."""
        k, v = self.order, self.vocab_size
        powers = jnp.asarray(v ** np.arange(k - 1, -1, -1))
        windows = jnp.stack([tokens[:, j : self.seq_len - k + 1 + j] for j in range(k)], -1)
        contexts = (windows * powers).sum(-1)
        log_t = jnp.log(jnp.asarray(self.transitions))
        start = jnp.log(jnp.asarray(self.stationary))[contexts[:, 0]]
        return start + log_t[contexts[:, :-1], tokens[:, k:]].sum(axis=1)


@dataclasses.dataclass(frozen=True)
class NoisyCopyLanguage:
    """n i.i.d. tokens then their noisy copy, L = 2n (module docstring)."""

    vocab_size: int
    seq_len: int
    noise: float = 0.05
    concentration: float = 1.0
    language_seed: int = 0

    def __post_init__(self):
        _check_settings(self.vocab_size, self.seq_len, self.concentration)
        if self.seq_len % 2:
            raise ValueError(f"The noisy copy language needs an even seq_len, got {self.seq_len}.")
        if not 0.0 < self.noise <= 1.0:
            raise ValueError(f"noise must be in (0, 1], got {self.noise!r}.")

    @cached_property
    def unigram(self) -> np.ndarray:
        """p (V,) of the first half's tokens."""
        rng = np.random.default_rng([self.language_seed, 0x434F5059])
        return rng.dirichlet(np.full(self.vocab_size, self.concentration))

    @property
    def _keep(self) -> float:
        """The probability that a copied token equals its original."""
        return 1.0 - self.noise + self.noise / self.vocab_size

    @property
    def entropy(self) -> float:
        n, v, e = self.seq_len // 2, self.vocab_size, self.noise
        copy = -self._keep * math.log(self._keep) - (v - 1) * (e / v) * math.log(e / v)
        return n * float(_entropy(self.unigram)) + n * copy

    @property
    def entropy_rate(self) -> float:
        return self.entropy / self.seq_len

    @property
    def perplexity_floor(self) -> float:
        return math.exp(self.entropy / self.seq_len)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        n, v = self.seq_len // 2, self.vocab_size
        first = rng.choice(v, size=(batch, n), p=self.unigram)
        replace = rng.random((batch, n)) < self.noise
        second = np.where(replace, rng.integers(v, size=(batch, n)), first)
        return np.concatenate([first, second], axis=1).astype(np.int32)

    def log_prob(self, tokens: np.ndarray) -> np.ndarray:
        tokens = _check_tokens(tokens, self.vocab_size, self.seq_len)
        n = self.seq_len // 2
        first, second = tokens[:, :n], tokens[:, n:]
        copy = np.where(second == first, self._keep, self.noise / self.vocab_size)
        with np.errstate(divide="ignore"):  # log 0 = -inf: a sequence the language never makes
            return np.log(self.unigram[first]).sum(axis=1) + np.log(copy).sum(axis=1)

    def log_prob_jax(self, tokens: Int[Array, "B L"]) -> Float[Array, "B"]:
        n = self.seq_len // 2
        first, second = tokens[:, :n], tokens[:, n:]
        copy = jnp.where(second == first, self._keep, self.noise / self.vocab_size)
        unigram = jnp.log(jnp.asarray(self.unigram))
        return unigram[first].sum(axis=1) + jnp.log(copy).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class RepeatedTokenLanguage:
    """One token uniform over `vocab_size` symbols repeated `seq_len` times (IMDM's synthetic
    task; module docstring). `language_seed` is kept for the common interface: the language has
    no random parameters."""

    vocab_size: int
    seq_len: int
    language_seed: int = 0

    def __post_init__(self):
        _check_settings(self.vocab_size, self.seq_len, concentration=1.0)

    @property
    def entropy(self) -> float:
        """H(X_1..L) = log V in nats."""
        return math.log(self.vocab_size)

    @property
    def entropy_rate(self) -> float:
        return self.entropy / self.seq_len

    @property
    def perplexity_floor(self) -> float:
        return math.exp(self.entropy / self.seq_len)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """(batch, L) int32 rows, each one uniform token repeated L times."""
        token = rng.integers(self.vocab_size, size=(batch, 1))
        return np.repeat(token, self.seq_len, axis=1).astype(np.int32)

    def log_prob(self, tokens: np.ndarray) -> np.ndarray:
        """log p(x_1..L) (B,), float64: -log V for a constant row, -inf otherwise."""
        tokens = _check_tokens(tokens, self.vocab_size, self.seq_len)
        constant = (tokens == tokens[:, :1]).all(axis=1)
        return np.where(constant, -math.log(self.vocab_size), -np.inf)

    def log_prob_jax(self, tokens: Int[Array, "B L"]) -> Float[Array, "B"]:
        constant = (tokens == tokens[:, :1]).all(axis=1)
        return jnp.where(constant, -math.log(self.vocab_size), -jnp.inf)


LANGUAGES = {
    "markov": MarkovLanguage,
    "noisy_copy": NoisyCopyLanguage,
    "repeated_token": RepeatedTokenLanguage,
}
"""The synthetic languages by the `name` of a "synthetic_text" data config."""

Language = MarkovLanguage | NoisyCopyLanguage | RepeatedTokenLanguage


def make_language(name: str, **settings) -> Language:
    """The language `name` ("markov", "noisy_copy" or "repeated_token") with its settings (the
    dataclass fields)."""
    if name not in LANGUAGES:
        raise ValueError(f"Unknown synthetic language {name!r}; expected one of {list(LANGUAGES)}.")
    fields = {f.name for f in dataclasses.fields(LANGUAGES[name])}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {unknown} of the {name!r} language; allowed: {sorted(fields)}."
        )
    return LANGUAGES[name](**settings)
