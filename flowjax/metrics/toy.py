"""Sample-quality metrics for the 2D toy distributions of `flowjax.data.toy`.

- Fraction of samples inside the support (checkerboard: the 8 squares), a direct measure of
  how sharp the learned density is.
- Negative log-likelihood in nats of held-out points under the model (from
  `flowjax.solvers.ode_log_likelihood`, Flow Matching Guide eq. 3.31), with its standard
  error, next to the true value -E[log p(x)] where the density is known in closed form
  (checkerboard: log 32 = 3.466 nats).
- Energy distance between samples and data (Szekely & Rizzo, 2013),
  D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|, which is zero iff the distributions agree and
  applies to every toy.
"""

from __future__ import annotations

import numpy as np

from flowjax import data

BOUNDED_SUPPORT = ("checkerboard", "discrete_checkerboard")
"""Toys for which `flowjax.data.in_support` is defined."""

CLOSED_FORM_DENSITY = (
    "checkerboard",
    "8gaussians",
    "torus_gaussians",
    "sphere_vmf",
    "discrete_checkerboard",
)
"""Toys for which `flowjax.data.log_density` is defined (a log mass for the discrete toy)."""


def fraction_in_support(name: str, samples: np.ndarray) -> float:
    """The fraction of `samples` (n, 2) inside the support of toy `name` (in BOUNDED_SUPPORT)."""
    inside = np.asarray(data.in_support(name, samples))
    if inside.size == 0:
        raise ValueError(f"samples must hold at least one point, got shape {np.shape(samples)}.")
    return float(np.mean(inside))


def negative_log_likelihood(log_likelihood: np.ndarray) -> dict[str, float]:
    """{"nll_nats": -mean log p, "nll_nats_stderr": its standard error} of per-point log p."""
    log_likelihood = np.asarray(log_likelihood, np.float64)
    if log_likelihood.size < 2:
        raise ValueError(
            "log_likelihood must hold at least 2 values (a mean and its standard error), got "
            f"shape {log_likelihood.shape}."
        )
    return {
        "nll_nats": float(-log_likelihood.mean()),
        "nll_nats_stderr": float(log_likelihood.std(ddof=1) / np.sqrt(log_likelihood.size)),
    }


def true_negative_log_likelihood(name: str, points: np.ndarray) -> float:
    """-mean log p(x) under the true density of toy `name` (in CLOSED_FORM_DENSITY)."""
    return float(-np.mean(np.asarray(data.log_density(name, points), np.float64)))


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """The squared energy distance between the samples x (n, d) and y (m, d) (V-statistic)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    for name, samples in (("x", x), ("y", y)):
        if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] != x.shape[-1]:
            raise ValueError(
                f"energy_distance needs samples x (n, d) and y (m, d) with n, m >= 1 and one d; "
                f"got {name} of shape {samples.shape} (x has shape {x.shape})."
            )

    def mean_distance(a, b):
        return np.mean(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1))

    return float(2.0 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y))
