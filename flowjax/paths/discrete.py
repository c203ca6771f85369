"""Discrete sources and the factorized mixture path of discrete flow matching.

Flow Matching Guide and Code (Lipman et al., 2024), section 7 ("Discrete Flow Matching"), in
the form of the reference code's `MixtureDiscreteProbPath`. Sequences x = (x^1, ..., x^D) take
values in a vocabulary [V] = {0, ..., V - 1}; the mixture path is factorized over tokens,

    p_t(x^i | x_1) = (1 - kappa_t) p_0(x^i) + kappa_t delta_{x_1^i}(x^i),

i.e. x_t^i = x_0^i with probability 1 - kappa_t and x_1^i otherwise, with kappa_0 = 0 and
kappa_1 = 1 given by a convex scheduler (kappa_t = alpha_t, 1 - kappa_t = sigma_t). Its
conditional velocity (the rate of a continuous-time Markov chain, per token) is

    u_t(y^i, x^i | x_1) = kappa'_t / (1 - kappa_t) [delta_{x_1^i}(y^i) - delta_{x^i}(y^i)],

and a model of the posterior p_{1|t}(x_1^i | x_t) gives the marginal velocity

    u_t(y^i, x_t) = kappa'_t / (1 - kappa_t) [p_{1|t}(y^i | x_t) - delta_{x_t^i}(y^i)].

By Bayes' rule the posterior of token i factors as
p(x_1^i = k | x_t) proportional to p_t(x_t^i | x_1^i = k) g_i(k), where only g_i depends on the
other tokens. `posterior_logits` adds log p_t(x_t^i | k) to a network's logits, so that the
network models log g_i: for a mask source an unmasked token is then its own x_1 (the
"carry-over" of masked diffusion models) and the extra mask token, never a data token, is
excluded; for a uniform source the current token's weight grows like kappa_t / (1 - kappa_t).
Without it the generalized KL pays kappa'/(1 - kappa) (1 - p_{1|t}(x_t^i | x_t)) for every
token already at its target, which makes the ELBO diverge as t -> 1 unless the network outputs
exactly 1. (The reference code uses the network's logits as they are.)

The corrector of the Guide's sampler adds the divergence-free rates
kappa'_t / (kappa_t (1 - kappa_t)) p_t(y^i | x_1): jumps to a fresh draw of the path at the same
time, which leave p_t unchanged (`flowjax.paths.kinetic_optimal.divergence_free_velocity`).

Sources: `MaskSource` (all mass on one extra token), `UniformSource`, `CategoricalSource` (any
fixed distribution over the vocabulary).

Conventions shared by every discrete path in flowjax (this one and
`flowjax.paths.MetricInducedProbPath`): tokens x have shape (B, *event) and an integer dtype;
logits and velocities have shape (B, *event, V); t has shape (B,) (one time per sequence) or is a
scalar. A velocity `v[..., y]` is the rate of jumping from the current token x^i to y; its
diagonal entry v[..., x^i] = -sum_{y != x^i} v[..., y], so every column of the rate matrix sums
to zero.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from flowjax._checks import (
    check_batch_time,
    check_logits,
    check_regular,
    check_same_shape,
    check_time,
    check_tokens,
    check_unit_interval,
)
from flowjax.paths.affine import expand_time
from flowjax.paths.schedulers import ConvexScheduler, SchedulerOutput


class DiscretePathSample(NamedTuple):
    """A draw from a discrete conditional path: the endpoints, t and x_t ~ p_t(. | x_0, x_1)."""

    x_0: Int[Array, "B *event"]
    x_1: Int[Array, "B *event"]
    t: Float[Array, "B"]
    x_t: Int[Array, "B *event"]


# Sources -----------------------------------------------------------------------------------


@runtime_checkable
class DiscretePath(Protocol):
    """What samplers, losses and the trainer use of a discrete probability path on [V]^D
    (`MixtureDiscreteProbPath`, `MetricInducedProbPath`): per token, a conditional path
    p_t(x^i | x_1^i) with its conditional CTMC velocity (Shaul et al., 2024, eq. 5 / 13).

    Arrays: tokens int (B, *event); logits and rates (B, *event, V); t (B,) in paths and losses,
    scalar or (B,) in samplers. `vocab_size` is None only for a mixture path built without a
    source (which can score but not sample).
    """

    @property
    def vocab_size(self) -> int | None: ...

    def sample(
        self,
        key: Array,
        x_0: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, "B"],
    ) -> DiscretePathSample:
        """x_t ~ p_t(. | x_1) (with the source draw x_0 where the path mixes one in)."""

    def probs(
        self, x_1: Int[Array, "B *event"], t: Float[Array, ""] | Float[Array, "B"]
    ) -> Float[Array, "B *event V"]:
        """p_t(. | x_1) per token, (..., V)."""

    def conditional_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """u_t(., x_t | x_1): rates out of x_t per token, (..., V)."""

    def divergence_free_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """Corrector rates that leave p_t unchanged, (..., V)."""

    def posterior_logits(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """The network's logits plus log p_t(x_t | x_1): the Bayes posterior over x_1."""

    def posterior_to_velocity(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """The marginal velocity E_{x_1 ~ p_{1|t}}[u_t(., x_t | x_1)], (..., V)."""


class DiscreteSource(abc.ABC):
    """A distribution p_0 over the vocabulary [V], the same for every token."""

    vocab_size: int

    @abc.abstractmethod
    def probs(self, dtype=jnp.float32) -> Float[Array, "V"]:
        """p_0 as a vector of shape (V,)."""

    @abc.abstractmethod
    def sample(self, key: Array, shape: tuple[int, ...]) -> Int[Array, "*shape"]:
        """Independent draws of p_0, int32 tokens of the given shape."""

    @property
    def constant_target_prob(self) -> float | None:
        """p_0(x_1) when it is the same for every data token x_1 (mask: 0, uniform: 1/V)."""
        return None


def _check_vocab_size(vocab_size: int, minimum: int = 1) -> None:
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < minimum:
        raise ValueError(f"vocab_size must be an int >= {minimum}, got {vocab_size!r}.")


@dataclasses.dataclass(frozen=True)
class MaskSource(DiscreteSource):
    """All mass on the mask token (by default the last one, V - 1, an extra token).

    The data use tokens 0 .. V - 2; the model's logits range over all V tokens.
    """

    vocab_size: int
    mask_token: int | None = None

    def __post_init__(self):
        _check_vocab_size(self.vocab_size, minimum=2)
        if self.mask_token is None:
            object.__setattr__(self, "mask_token", self.vocab_size - 1)
        if not 0 <= self.mask_token < self.vocab_size:
            raise ValueError(
                f"mask_token must lie in [0, {self.vocab_size}), got {self.mask_token!r}."
            )

    def probs(self, dtype=jnp.float32) -> Float[Array, "V"]:
        return jax.nn.one_hot(self.mask_token, self.vocab_size, dtype=dtype)

    def sample(self, key: Array, shape: tuple[int, ...]) -> Int[Array, "*shape"]:
        del key
        return jnp.full(shape, self.mask_token, jnp.int32)

    @property
    def constant_target_prob(self) -> float:
        return 0.0


@dataclasses.dataclass(frozen=True)
class UniformSource(DiscreteSource):
    """The uniform distribution over all V tokens."""

    vocab_size: int

    def __post_init__(self):
        _check_vocab_size(self.vocab_size)

    def probs(self, dtype=jnp.float32) -> Float[Array, "V"]:
        return jnp.full((self.vocab_size,), 1.0 / self.vocab_size, dtype)

    def sample(self, key: Array, shape: tuple[int, ...]) -> Int[Array, "*shape"]:
        return jax.random.randint(key, shape, 0, self.vocab_size, jnp.int32)

    @property
    def constant_target_prob(self) -> float:
        return 1.0 / self.vocab_size


@dataclasses.dataclass(frozen=True)
class CategoricalSource(DiscreteSource):
    """Any fixed distribution over the vocabulary, given as a tuple of V probabilities."""

    probabilities: tuple[float, ...]

    def __post_init__(self):
        p = np.asarray(self.probabilities, dtype=np.float64)
        if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(
                "CategoricalSource needs a non-empty vector of non-negative probabilities "
                f"summing to 1, got {self.probabilities!r}."
            )
        object.__setattr__(self, "probabilities", tuple(float(v) for v in p))

    @property
    def vocab_size(self) -> int:  # type: ignore[override]
        return len(self.probabilities)

    def probs(self, dtype=jnp.float32) -> Float[Array, "V"]:
        return jnp.asarray(self.probabilities, dtype)

    def sample(self, key: Array, shape: tuple[int, ...]) -> Int[Array, "*shape"]:
        logits = jnp.log(self.probs())
        return jax.random.categorical(key, logits, shape=shape).astype(jnp.int32)


# Shared helpers of the discrete paths --------------------------------------------------------


def with_exit_rate(
    rates: Float[Array, "*shape V"], x_t: Int[Array, "*shape"]
) -> Float[Array, "*shape V"]:
    """Rates to every y (..., V) with the diagonal entry set to -(sum of the others)."""
    current = jax.nn.one_hot(x_t, rates.shape[-1], dtype=bool)
    off_diagonal = jnp.where(current, 0.0, rates)
    return jnp.where(current, -off_diagonal.sum(-1, keepdims=True), off_diagonal)


def check_path_sample_args(
    x_0: Int[Array, "B *event"],
    x_1: Int[Array, "B *event"],
    t: Float[Array, "B"],
    vocab_size: int | None,
) -> None:
    check_same_shape(x_0, x_1, "x_0", "x_1")
    check_tokens(x_0, vocab_size, "x_0")
    check_tokens(x_1, vocab_size, "x_1")
    check_batch_time(t, x_1, "x_1")
    check_unit_interval(t)


def check_token_args(vocab_size: int | None, t: Array, **tokens: Array) -> None:
    """The arguments of a path's per-token methods: integer token arrays of one shape (ids in
    [0, vocab_size) when concrete) and t, a scalar, (B,) or broadcast against them, in [0, 1]
    when concrete."""
    arrays = {name: jnp.asarray(x) for name, x in tokens.items()}
    for name, x in arrays.items():
        check_tokens(x, vocab_size, name)
    shapes = {name: x.shape for name, x in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{' and '.join(shapes)} must have the same shape; got {shapes}.")
    name, x = next(iter(arrays.items()))
    check_time(t, x, name)
    check_unit_interval(t)


# The mixture path ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MixtureDiscreteProbPath:
    """p_t(x^i | x_1) = (1 - kappa_t) p_0(x^i) + kappa_t delta_{x_1^i}(x^i), per token.

    Attributes:
      scheduler: a convex scheduler; kappa_t is its alpha_t (e.g. `PolynomialScheduler(2.0)`,
        or `KineticOptimalScheduler` for the kinetic-optimal mixture path).
      source: p_0. Optional for `sample` and `posterior_to_velocity`, which need only kappa
        (as in the reference code); required for the methods that need the vocabulary or p_0:
        `probs`, `conditional_velocity`, `divergence_free_velocity` and everything built on
        them (the sampler, the generalized KL loss, the ELBO).
    """

    scheduler: ConvexScheduler
    source: DiscreteSource | None = None

    def __post_init__(self):
        if not isinstance(self.scheduler, ConvexScheduler):
            raise TypeError(
                "MixtureDiscreteProbPath needs a ConvexScheduler (kappa_t = alpha_t, "
                f"1 - kappa_t = sigma_t), got {type(self.scheduler).__name__}."
            )
        if self.source is not None and not isinstance(self.source, DiscreteSource):
            raise TypeError(
                "source must be a DiscreteSource (MaskSource, UniformSource or "
                f"CategoricalSource), got {type(self.source).__name__}."
            )

    @property
    def vocab_size(self) -> int | None:
        return None if self.source is None else self.source.vocab_size

    def _source(self) -> DiscreteSource:
        if self.source is None:
            raise ValueError(
                "This MixtureDiscreteProbPath has no source; build it as "
                "MixtureDiscreteProbPath(scheduler, source=MaskSource(V)) (or UniformSource(V), "
                "CategoricalSource(p)) to use probabilities, conditional velocities, the sampler "
                "or the generalized KL loss."
            )
        return self.source

    def _schedule(self, t: Array, x: Array) -> SchedulerOutput:
        """kappa_t = alpha_t, 1 - kappa_t = sigma_t (as the scheduler computes it, which keeps
        its precision near t = 1) and kappa'_t, broadcastable against tokens x."""
        return self.scheduler(expand_time(t, x))

    def _jump_rate(self, t: Array, x: Array) -> Array:
        """kappa'_t / (1 - kappa_t) with a trailing axis for the vocabulary."""
        out = self._schedule(t, x)
        check_regular(t, "The jump rate of the mixture path", finite=out, nonzero=(out.sigma_t,))
        return (out.d_alpha_t / out.sigma_t)[..., None]

    def sample(
        self,
        key: Array,
        x_0: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, "B"],
    ) -> DiscretePathSample:
        """x_t: each token is x_0^i with probability 1 - kappa_t, else x_1^i.

        Args:
          key: PRNG key.
          x_0: source tokens, shape (B, *event).
          x_1: data tokens, shape (B, *event).
          t: times in [0, 1], shape (B,).
        """
        x_0, x_1, t = jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t)
        check_path_sample_args(x_0, x_1, t, self.vocab_size)
        sigma = self._schedule(t, x_1).sigma_t
        from_source = jax.random.uniform(key, x_1.shape, dtype=sigma.dtype) < sigma
        return DiscretePathSample(x_0=x_0, x_1=x_1, t=t, x_t=jnp.where(from_source, x_0, x_1))

    def probs(
        self, x_1: Int[Array, "B *event"], t: Float[Array, ""] | Float[Array, "B"]
    ) -> Float[Array, "B *event V"]:
        """p_t(. | x_1) per token, shape x_1.shape + (V,)."""
        source = self._source()
        check_token_args(source.vocab_size, t, x_1=x_1)
        out = self._schedule(t, x_1)
        kappa, sigma = out.alpha_t[..., None], out.sigma_t[..., None]
        p_0 = source.probs(kappa.dtype)
        return sigma * p_0 + kappa * jax.nn.one_hot(x_1, source.vocab_size, dtype=p_0.dtype)

    def conditional_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """u_t(., x_t | x_1) = kappa'/(1 - kappa) [delta_{x_1} - delta_{x_t}], shape (..., V)."""
        vocab = self._source().vocab_size
        check_token_args(vocab, t, x_t=x_t, x_1=x_1)
        rate = self._jump_rate(t, x_t)
        return rate * (
            jax.nn.one_hot(x_1, vocab, dtype=rate.dtype)
            - jax.nn.one_hot(x_t, vocab, dtype=rate.dtype)
        )

    def posterior_logits(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """A network's logits plus log p_t(x_t^i | x_1^i = k) for every k (Bayes' rule, see the
        module docstring), shape x_t.shape + (V,); a `MaskSource`'s mask token gets -inf."""
        source = self._source()
        check_token_args(source.vocab_size, t, x_t=x_t)
        check_logits(logits, x_t, source.vocab_size)
        out = self._schedule(t, x_t)
        sigma, kappa = out.sigma_t[..., None], out.alpha_t[..., None]
        current = jax.nn.one_hot(x_t, source.vocab_size, dtype=sigma.dtype)
        likelihood = sigma * source.probs(sigma.dtype)[x_t][..., None] + kappa * current
        tilted = logits + jnp.log(likelihood)
        if isinstance(source, MaskSource):
            tilted = jnp.where(jnp.arange(source.vocab_size) == source.mask_token, -jnp.inf, tilted)
        return tilted

    def posterior_to_velocity(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """u_t(., x_t) = kappa'/(1 - kappa) [softmax(logits) - delta_{x_t}], shape (..., V).

        Args:
          logits: the model's posterior logits over x_1, shape x_t.shape + (V,).
          x_t: current tokens, shape (B, *event).
          t: shape (B,) or a scalar.
        """
        check_logits(logits, x_t, self.vocab_size)
        check_token_args(logits.shape[-1], t, x_t=x_t)
        posterior = jax.nn.softmax(logits, axis=-1)
        rate = self._jump_rate(t, x_t)
        return rate * (posterior - jax.nn.one_hot(x_t, logits.shape[-1], dtype=posterior.dtype))

    def posterior_to_log_velocity(
        self,
        logits: Float[Array, "B *event V"],
        x_t: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """log u_t(y, x_t) for y != x_t (-inf at y = x_t), shape (..., V): the log-space form
        of `posterior_to_velocity` used by the generalized KL loss."""
        check_logits(logits, x_t, self.vocab_size)
        check_token_args(logits.shape[-1], t, x_t=x_t)
        log_rate = jnp.log(self._jump_rate(t, x_t))
        log_u = log_rate + jax.nn.log_softmax(logits, axis=-1)
        current = jax.nn.one_hot(x_t, logits.shape[-1], dtype=bool)
        return jnp.where(current, -jnp.inf, log_u)

    def divergence_free_velocity(
        self,
        x_t: Int[Array, "B *event"],
        x_1: Int[Array, "B *event"],
        t: Float[Array, ""] | Float[Array, "B"],
    ) -> Float[Array, "B *event V"]:
        """The corrector kappa'/(kappa (1 - kappa)) p_t(. | x_1), with its exit rate on the
        diagonal, shape (..., V); zero where kappa is 0 or 1."""
        check_token_args(self._source().vocab_size, t, x_t=x_t, x_1=x_1)
        out = self._schedule(t, x_t)
        inside = (out.alpha_t > 0.0) & (out.sigma_t > 0.0)
        safe = jnp.where(inside, out.alpha_t * out.sigma_t, 1.0)
        scale = jnp.where(inside, out.d_alpha_t / safe, 0.0)[..., None]
        return with_exit_rate(scale * self.probs(x_1, t), x_t)
