"""Schedulers (alpha_t, sigma_t) of affine probability paths.

Flow Matching Guide and Code (Lipman et al., 2024), section 4.8 ("Affine conditional flows")
and table 1: an affine conditional path is x_t = alpha_t x_1 + sigma_t x_0 with alpha_0 = 0,
alpha_1 = 1, sigma_0 = 1, sigma_1 = 0 (t = 0 source, t = 1 data). A scheduler returns
(alpha_t, sigma_t) and their time derivatives, and inverts the signal-to-noise ratio
snr(t) = alpha_t / sigma_t (eq. 4.84 ff.), which the scale-time transform needs.
Convex schedulers have sigma_t = 1 - kappa_t and also invert kappa_t.

Every scheduler is a frozen dataclass of static floats, callable on an array `t` of any shape
and dtype; it is jit-, vmap- and grad-safe.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float


class SchedulerOutput(NamedTuple):
    """alpha_t, sigma_t and their derivatives d/dt, all of the shape of `t`."""

    alpha_t: Float[Array, "*shape"]
    sigma_t: Float[Array, "*shape"]
    d_alpha_t: Float[Array, "*shape"]
    d_sigma_t: Float[Array, "*shape"]


class Scheduler(abc.ABC):
    """(alpha_t, sigma_t) of an affine path x_t = alpha_t x_1 + sigma_t x_0."""

    @abc.abstractmethod
    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        """Evaluates the schedule at `t` (any shape)."""

    @abc.abstractmethod
    def snr_inverse(self, snr: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The time t at which alpha_t / sigma_t equals `snr` (any shape)."""


class ConvexScheduler(Scheduler):
    """A scheduler with sigma_t = 1 - kappa_t, alpha_t = kappa_t (Guide, eq. 4.72)."""

    @abc.abstractmethod
    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The time t at which kappa_t equals `kappa`."""

    def snr_inverse(self, snr: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        # alpha/sigma = kappa/(1-kappa)  <=>  kappa = snr/(1+snr).
        snr = jnp.asarray(snr)
        return self.kappa_inverse(snr / (1.0 + snr))


@dataclasses.dataclass(frozen=True)
class CondOTScheduler(ConvexScheduler):
    """Conditional optimal transport: alpha_t = t, sigma_t = 1 - t (Guide, eq. 4.76)."""

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        one = jnp.ones_like(t)
        return SchedulerOutput(t, 1.0 - t, one, -one)

    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return jnp.asarray(kappa)


@dataclasses.dataclass(frozen=True)
class PolynomialScheduler(ConvexScheduler):
    """Polynomial convex schedule: alpha_t = t^n, sigma_t = 1 - t^n."""

    n: float = 1.0

    def __post_init__(self):
        if not self.n > 0:
            raise ValueError(f"PolynomialScheduler needs an exponent n > 0, got n={self.n!r}.")

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        kappa = t**self.n
        d_kappa = self.n * t ** (self.n - 1.0)
        return SchedulerOutput(kappa, 1.0 - kappa, d_kappa, -d_kappa)

    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return jnp.asarray(kappa) ** (1.0 / self.n)


@dataclasses.dataclass(frozen=True)
class ShiftedScheduler(ConvexScheduler):
    """A convex scheduler with its signal-to-noise ratio divided by `shift` at every time.

    The resolution-dependent shift of the noise schedule (Berrada et al., 2024, "On Improved
    Conditioning Mechanisms and Pre-training Strategies for Diffusion Models", section 4; the
    same shift as Esser et al., 2024, eq. 23): an image with `shift` times the side of the one a
    schedule was tuned for keeps more of its signal under the same noise, so the log-SNR
    log(alpha_t / sigma_t)^2 is lowered by 2 log(shift). With kappa_t of `base`,

        kappa'_t = kappa_t / (kappa_t + shift (1 - kappa_t)),

    so kappa' / (1 - kappa') = (kappa / (1 - kappa)) / shift, kappa'_0 = 0, kappa'_1 = 1, and
    shift = 1 is `base`. For the conditional-OT base, kappa'_t = t / (t + shift (1 - t)).
    """

    base: ConvexScheduler = dataclasses.field(default_factory=CondOTScheduler)
    shift: float = 1.0

    def __post_init__(self):
        if not isinstance(self.base, ConvexScheduler):
            raise ValueError(
                "The resolution shift applies to a convex scheduler (sigma_t = 1 - kappa_t: "
                f"'cond_ot' or 'polynomial'), got {type(self.base).__name__}."
            )
        if not self.shift > 0:
            raise ValueError(f"The resolution shift must be > 0, got {self.shift!r}.")

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        kappa, _, d_kappa, _ = self.base(t)
        denominator = kappa + self.shift * (1.0 - kappa)
        shifted = kappa / denominator
        d_shifted = self.shift * d_kappa / denominator**2
        return SchedulerOutput(shifted, 1.0 - shifted, d_shifted, -d_shifted)

    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        kappa = jnp.asarray(kappa)
        return self.base.kappa_inverse(self.shift * kappa / (1.0 - kappa + self.shift * kappa))


def resolution_shift(resolution: float, base_resolution: float) -> float:
    """The shift of `ShiftedScheduler` for images of side `resolution` when the schedule was
    set for `base_resolution` (their ratio: the log-SNR moves by 2 log of it)."""
    if not (resolution > 0 and base_resolution > 0):
        raise ValueError(
            f"Resolutions must be > 0, got {resolution!r} and {base_resolution!r}."
        )
    return float(resolution) / float(base_resolution)


@dataclasses.dataclass(frozen=True)
class VPScheduler(Scheduler):
    """Variance-preserving schedule of score-based diffusion (Song et al., 2021) in FM time.

    T(t) = 0.5 (1-t)^2 (beta_max - beta_min) + (1-t) beta_min,
    alpha_t = exp(-T/2), sigma_t = sqrt(1 - exp(-T))   (Guide, eq. 4.79).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(
                "VPScheduler needs 0 <= beta_min < beta_max, got "
                f"beta_min={self.beta_min!r}, beta_max={self.beta_max!r}."
            )

    def _big_t(self, t):
        s = 1.0 - t
        return 0.5 * s**2 * (self.beta_max - self.beta_min) + s * self.beta_min

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        big_t = self._big_t(t)
        d_big_t = -(1.0 - t) * (self.beta_max - self.beta_min) - self.beta_min
        alpha = jnp.exp(-0.5 * big_t)
        sigma = jnp.sqrt(-jnp.expm1(-big_t))
        d_alpha = -0.5 * d_big_t * alpha
        d_sigma = 0.5 * jnp.exp(-big_t) * d_big_t / sigma
        return SchedulerOutput(alpha, sigma, d_alpha, d_sigma)

    def snr_inverse(self, snr: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        # snr^2 = e^-T / (1 - e^-T)  =>  T = log(1 + snr^-2); then solve the quadratic in 1-t.
        snr = jnp.asarray(snr)
        big_t = jnp.log1p(snr**-2.0)
        db = self.beta_max - self.beta_min
        s = (-self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * db * big_t)) / db
        return 1.0 - s


@dataclasses.dataclass(frozen=True)
class LinearVPScheduler(Scheduler):
    """Linear variance-preserving: alpha_t = t, sigma_t = sqrt(1 - t^2) (Guide, table 1)."""

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        sigma = jnp.sqrt(1.0 - t**2)
        return SchedulerOutput(t, sigma, jnp.ones_like(t), -t / sigma)

    def snr_inverse(self, snr: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        snr = jnp.asarray(snr)
        return snr / jnp.sqrt(1.0 + snr**2)


@dataclasses.dataclass(frozen=True)
class CosineScheduler(Scheduler):
    """Cosine schedule: alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2) (Guide, table 1)."""

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        half_pi = 0.5 * jnp.pi
        return SchedulerOutput(
            jnp.sin(half_pi * t),
            jnp.cos(half_pi * t),
            half_pi * jnp.cos(half_pi * t),
            -half_pi * jnp.sin(half_pi * t),
        )

    def snr_inverse(self, snr: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return 2.0 * jnp.arctan(jnp.asarray(snr)) / jnp.pi


MASKING_SCHEDULES = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class MaskedDiffusionScheduler(ConvexScheduler):
    """The unmasking schedule of masked diffusion language models in flowjax time:
    kappa_t = eps_start + (1 - eps_start - eps_end) k(t), the probability that a token is
    already unmasked at time t, with k(t) = t ("linear") or 1 - cos(pi t / 2) ("cosine").

    MDLM (Sahoo et al., 2024) uses alpha_s = 1 - (1 - 1e-3) s in its own time s = 1 - t, i.e.
    "linear" with eps_start = 1e-3, eps_end = 0; MD4 (Shi et al., 2024, eq. 3 / appendix) clips
    both ends, alpha = (1 - 2e) alpha~ + e with e = 1e-4 (eps_start = eps_end = 1e-4), with its
    linear alpha~(s) = 1 - s or cosine alpha~(s) = 1 - cos(pi (1 - s) / 2), i.e. k(t) above.
    """

    kind: str = "linear"
    eps_start: float = 1e-3
    eps_end: float = 0.0

    def __post_init__(self):
        if self.kind not in MASKING_SCHEDULES:
            raise ValueError(
                f"Unknown masking schedule {self.kind!r}; expected one of {MASKING_SCHEDULES}."
            )
        eps = (self.eps_start, self.eps_end)
        if not (min(eps) >= 0.0 and sum(eps) < 1.0):
            raise ValueError(
                "MaskedDiffusionScheduler needs eps_start, eps_end >= 0 with eps_start + eps_end "
                f"< 1, got eps_start={self.eps_start!r}, eps_end={self.eps_end!r}."
            )

    @property
    def _span(self) -> float:
        return 1.0 - self.eps_start - self.eps_end

    def __call__(self, t: Float[Array, "*shape"]) -> SchedulerOutput:
        t = jnp.asarray(t)
        if self.kind == "linear":
            k, d_k = t, jnp.ones_like(t)
        else:
            half_pi = 0.5 * jnp.pi
            k, d_k = 1.0 - jnp.cos(half_pi * t), half_pi * jnp.sin(half_pi * t)
        kappa = self.eps_start + self._span * k
        return SchedulerOutput(kappa, 1.0 - kappa, self._span * d_k, -self._span * d_k)

    def kappa_inverse(self, kappa: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        k = (jnp.asarray(kappa) - self.eps_start) / self._span
        if self.kind == "linear":
            return k
        return 2.0 * jnp.arccos(1.0 - k) / jnp.pi

