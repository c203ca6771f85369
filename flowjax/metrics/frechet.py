"""The Frechet distance between Gaussians fitted to features, and its streaming statistics.

Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", eq. (6): the Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2),

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

It is the FID when the features are Inception pool_3 activations (`flowjax.metrics.inception`)
and a Frechet distance in another feature space otherwise (`flowjax.metrics.digits_classifier`).
The trace term is computed without a non-symmetric matrix square root: with A = S1^(1/2) (from
a symmetric eigendecomposition), S1 S2 is similar to the symmetric PSD matrix A S2 A, so
tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(A S2 A)), all in float64. This stays exact for
singular covariances (fewer samples than feature dimensions, dead features).

`FeatureStatistics` holds (count, mean, M2 = sum of centred outer products) in float64 on the
host and is updated batch by batch with Chan et al.'s pairwise merge, so 50,000 samples of
2048-d features need one (2048, 2048) matrix, not the (50000, 2048) feature table; the same merge
combines statistics computed on separate shards or hosts. Reference statistics are .npz files
with `mu` (d,) and `sigma` (d, d), the format of pytorch-fid and the TTUR reference files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d^2 between N(mu1, sigma1) and N(mu2, sigma2); means (d,), covariances (d, d)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[-1] if mu1.ndim == 1 else None
    for name, value, shape in (
        ("mu1", mu1, (d,)),
        ("mu2", mu2, (d,)),
        ("sigma1", sigma1, (d, d)),
        ("sigma2", sigma2, (d, d)),
    ):
        if d is None or value.shape != shape:
            raise ValueError(
                f"frechet_distance expects means of shape (d,) and covariances of shape (d, d) "
                f"with one d; got {name} of shape {value.shape} (mu1 has shape {mu1.shape})."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"frechet_distance: {name} has non-finite entries.")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        smallest = np.linalg.eigvalsh((sigma + sigma.T) / 2).min(initial=0.0)
        if smallest < -1e-6 * d * max(np.abs(sigma).max(initial=0.0), np.finfo(np.float64).tiny):
            raise ValueError(
                f"frechet_distance: {name} must be a covariance (symmetric positive "
                f"semi-definite), got a matrix with the eigenvalue {smallest:.6g}."
            )
    eigvals, eigvecs = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (eigvecs * np.sqrt(_drop_round_off(eigvals))) @ eigvecs.T
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sum(np.sqrt(_drop_round_off(np.linalg.eigvalsh((middle + middle.T) / 2))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _drop_round_off(eigvals: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those within round-off of zero (below d * eps * the
    largest) set to 0: a singular covariance's null space would otherwise add sqrt(round-off)
    per dimension to the trace term."""
    threshold = eigvals.shape[0] * np.finfo(np.float64).eps * np.max(np.abs(eigvals), initial=0.0)
    return np.where(eigvals > threshold, eigvals, 0.0)


@dataclasses.dataclass(frozen=True)
class FeatureStatistics:
    """Mean and scatter of the features seen so far, in float64.

    count: number of feature vectors; mean: (d,); m2: (d, d), the sum over samples of
    (f - mean)(f - mean)^T. `covariance` is m2 / (count - 1), as numpy.cov (and pytorch-fid).
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> FeatureStatistics:
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_features(cls, features) -> FeatureStatistics:
        """Statistics of a (n, d) batch of features."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(
                f"Expected features of shape (n, d) with n >= 1, got {features.shape}."
            )
        if not np.all(np.isfinite(features)):
            raise ValueError("Features contain NaN or inf (are the images finite?).")
        mean = features.mean(axis=0)
        centred = features - mean
        return cls(features.shape[0], mean, centred.T @ centred)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """The statistics of the union of both sample sets (Chan, Golub & LeVeque, 1979)."""
        if other.dim != self.dim:
            raise ValueError(f"Cannot merge statistics of dimension {self.dim} and {other.dim}.")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / count)
        return FeatureStatistics(count, mean, m2)

    def update(self, features) -> FeatureStatistics:
        """These statistics with the (n, d) batch `features` added."""
        return self.merge(FeatureStatistics.from_features(features))

    @property
    def covariance(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"A covariance needs at least 2 samples, got {self.count}.")
        return self.m2 / (self.count - 1)

    def save(self, path: str) -> None:
        """Writes {mu, sigma, count} to the .npz file `path` (the reference-statistics format)."""
        np.savez(path, mu=self.mean, sigma=self.covariance, count=self.count)


def merge_statistics(parts: Iterable[FeatureStatistics]) -> FeatureStatistics:
    """One FeatureStatistics from those of disjoint shards of the samples."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_statistics needs at least one FeatureStatistics.")
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    return total


def load_reference_statistics(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu (d,), sigma (d, d)) from a reference .npz with arrays `mu` and `sigma`."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Reference statistics file {path!r} does not exist. Compute it from real images "
            f"with flowjax.metrics.feature_statistics(...).save(path), or use the published "
            f"pytorch-fid / TTUR .npz (arrays 'mu' and 'sigma') for the data set."
        )
    with np.load(path) as archive:
        missing = {"mu", "sigma"} - set(archive.files)
        if missing:
            raise ValueError(
                f"Reference statistics {path!r} lack {sorted(missing)}; expected arrays 'mu' (d,) "
                f"and 'sigma' (d, d), found {archive.files}."
            )
        mu, sigma = np.asarray(archive["mu"], np.float64), np.asarray(archive["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"Reference statistics {path!r}: expected mu (d,) and sigma (d, d), got "
            f"{mu.shape} and {sigma.shape}."
        )
    return mu, sigma


Batches = Iterable[Any] | Callable[[jax.Array, int], Any]
"""Images to score: an iterable of (b, H, W, C) batches, or a sampler `sampler(key, b)`."""


def image_batches(
    source: Batches, num_samples: int, batch_size: int, key: jax.Array | None = None
) -> Iterator[np.ndarray]:
    """Exactly `num_samples` images, in batches of at most `batch_size`, from `source`.

    A callable `source` is a sampler called as `source(jax.random.fold_in(key, i), b)` for the
    i-th batch of b images (`key` is required then); an iterable is read until `num_samples`
    images have been taken (its last batch is cut) and must hold that many.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(
            f"num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}."
        )
    if callable(source):
        if key is None:
            raise ValueError("A sampler source needs a `key` (a jax.random key).")
        for i, start in enumerate(range(0, num_samples, batch_size)):
            size = min(batch_size, num_samples - start)
            batch = np.asarray(source(jax.random.fold_in(key, i), size))
            if batch.shape[0] != size:
                raise ValueError(f"The sampler returned {batch.shape[0]} images, asked for {size}.")
            yield batch
        return
    taken = 0
    for batch in source:
        batch = np.asarray(batch)[: num_samples - taken]
        taken += batch.shape[0]
        yield batch
        if taken == num_samples:
            return
    raise ValueError(f"The image iterable ran out after {taken} of {num_samples} images.")


def feature_statistics(
    feature_fn: Callable[[np.ndarray], Any],
    source: Batches,
    num_samples: int,
    batch_size: int,
    key: jax.Array | None = None,
) -> FeatureStatistics:
    """Streaming FeatureStatistics of `feature_fn(images)` ((b, d) per batch) over the images
    of `source` (see `image_batches`); only one batch of features is held at a time."""
    stats = None
    for batch in image_batches(source, num_samples, batch_size, key):
        features = FeatureStatistics.from_features(feature_fn(batch))
        stats = features if stats is None else stats.merge(features)
    return stats


def frechet_distance_to_reference(
    stats: FeatureStatistics, reference: str | tuple[np.ndarray, np.ndarray] | FeatureStatistics
) -> float:
    """The Frechet distance between `stats` and a reference given as an .npz path, a
    (mu, sigma) pair or another FeatureStatistics."""
    if isinstance(reference, FeatureStatistics):
        mu, sigma = reference.mean, reference.covariance
    elif isinstance(reference, (str, os.PathLike)):
        mu, sigma = load_reference_statistics(os.fspath(reference))
    else:
        mu, sigma = reference
    return frechet_distance(stats.mean, stats.covariance, mu, sigma)
