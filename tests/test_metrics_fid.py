"""The Frechet distance against scipy's matrix square root, streaming statistics against the
batch formulas, and the Inception Score on probability tables with known scores."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import linalg

from flowjax.metrics import frechet
from flowjax.metrics.inception_score import (
    ScoreStatistics,
    inception_score,
    inception_score_from_probs,
)


def scipy_frechet(mu1, sigma1, mu2, sigma2):
    """Heusel et al. eq. (6) with scipy.linalg.sqrtm, in float64."""
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean.real))


def random_stats(rng, d, n):
    features = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    return features.mean(0), np.cov(features, rowvar=False)


@pytest.mark.parametrize("d", [3, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, sigma1 = random_stats(rng, d, 4 * d)
    mu2, sigma2 = random_stats(rng, d, 4 * d)
    expected = scipy_frechet(mu1, sigma1, mu2, sigma2)
    assert frechet.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)
    # Symmetric in its two arguments, as a distance.
    assert frechet.frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_closed_form_and_singular_covariances():
    # N(0, a^2 I) vs N(m, b^2 I) in d dims: |m|^2 + d (a - b)^2.
    d, a, b = 5, 2.0, 0.5
    m = np.arange(d, dtype=float)
    value = frechet.frechet_distance(np.zeros(d), a**2 * np.eye(d), m, b**2 * np.eye(d))
    assert value == pytest.approx(m @ m + d * (a - b) ** 2, rel=1e-12)
    # Fewer samples than dimensions (rank 5 in 40 dims): distance to itself is ~0, not
    # sqrt(round-off) per null direction.
    features = np.random.default_rng(0).standard_normal((6, 40))
    stats = frechet.FeatureStatistics.from_features(features)
    mu, sigma = stats.mean, stats.covariance
    self_distance = frechet.frechet_distance(mu, sigma, mu, sigma)
    assert abs(self_distance) < 1e-12 * np.trace(stats.covariance)


def test_streaming_statistics_equal_batch_formulas_in_any_split():
    rng = np.random.default_rng(1)
    # A large common offset: the streamed covariance must not lose it to cancellation.
    features = 1e4 + rng.standard_normal((1000, 8)) @ rng.standard_normal((8, 8))
    sizes = [1, 7, 300, 2, 690]
    stats = frechet.FeatureStatistics.empty(8)
    for chunk in np.split(features, np.cumsum(sizes)[:-1]):
        stats = stats.update(chunk)
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-9)
    # Per-shard statistics merged in another order give the same result.
    shards = [frechet.FeatureStatistics.from_features(s) for s in np.array_split(features, 5)]
    merged = frechet.merge_statistics(shards[::-1])
    np.testing.assert_allclose(merged.covariance, stats.covariance, rtol=1e-9)


def test_feature_statistics_from_sampler_and_iterable(tmp_path):
    """`feature_statistics` reads exactly num_samples images from a sampler (one fold_in key
    per batch) or an iterable; the reference .npz round-trips."""
    key = jax.random.key(0)

    def sampler(k, n):
        return np.asarray(jax.random.normal(k, (n, 2, 2, 1)))

    flatten = lambda images: images.reshape(images.shape[0], -1)  # noqa: E731
    stats = frechet.feature_statistics(flatten, sampler, 10, 4, key=key)
    expected = np.concatenate(
        [sampler(jax.random.fold_in(key, i), n).reshape(n, -1) for i, n in enumerate([4, 4, 2])]
    )
    np.testing.assert_allclose(stats.covariance, np.cov(expected, rowvar=False), rtol=1e-10)
    from_iterable = frechet.feature_statistics(flatten, iter([expected.reshape(10, 2, 2, 1)]), 7, 4)
    np.testing.assert_allclose(from_iterable.mean, expected[:7].astype(float).mean(0), rtol=1e-12)
    path = tmp_path / "reference.npz"
    stats.save(str(path))
    assert frechet.frechet_distance_to_reference(stats, str(path)) == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="ran out after 10 of 11"):
        frechet.feature_statistics(flatten, iter([expected.reshape(10, 2, 2, 1)]), 11, 4)
    with pytest.raises(ValueError, match="needs a `key`"):
        frechet.feature_statistics(flatten, sampler, 10, 4)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        frechet.load_reference_statistics(str(tmp_path / "missing.npz"))


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(d, d\)"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        frechet.frechet_distance(np.zeros(2), np.eye(2), np.array([0, np.nan]), np.eye(2))


def test_inception_score_of_known_tables():
    c, n = 10, 200
    # Every sample uniform over the classes: p(y|x) = p(y), score 1.
    assert inception_score_from_probs(np.full((n, c), 1 / c)) == pytest.approx((1.0, 0.0))
    # One-hot, the classes spread evenly within every split: score = number of classes.
    one_hot = np.eye(c)[np.arange(n) % c]
    mean, std = inception_score_from_probs(one_hot)
    assert mean == pytest.approx(c, rel=1e-12) and std == pytest.approx(0, abs=1e-9)
    # Confident on k of the classes only: score k (here k = 4, 2 splits).
    mean, _ = inception_score_from_probs(np.eye(c)[np.arange(n) % 4], num_splits=2)
    assert mean == pytest.approx(4, rel=1e-12)
    # Two samples per split with p(y|x) = (1, 0) and (1/2, 1/2): p(y) = (3/4, 1/4),
    # KL mean = (log(4/3) + (1/2) log(2/3) + (1/2) log 2) / 2.
    probs = np.tile([[1.0, 0.0], [0.5, 0.5]], (3, 1))
    kl = (np.log(4 / 3) + 0.5 * np.log(2 / 3) + 0.5 * np.log(2)) / 2
    assert inception_score_from_probs(probs, num_splits=3)[0] == pytest.approx(np.exp(kl))


def test_streamed_inception_score_equals_one_shot_and_per_split_formula():
    rng = np.random.default_rng(2)
    logits = 3 * rng.standard_normal((103, 7))
    stats = ScoreStatistics.empty(103, 7, num_splits=10)
    for chunk in np.array_split(logits, [5, 6, 50]):
        stats = stats.update_logits(chunk)
    assert stats.score() == pytest.approx(inception_score(logits))
    # Chunk k holds samples [k N // s, (k+1) N // s), each scored directly.
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    bounds = np.arange(11) * 103 // 10
    scores = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        p = probs[lo:hi]
        scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), axis=1))))
    assert inception_score(logits) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)
    with pytest.raises(ValueError, match="Only 5 of the 103"):
        ScoreStatistics.empty(103, 7).update_logits(logits[:5]).score()
    with pytest.raises(ValueError, match=r"shape \(b, 7\)"):
        ScoreStatistics.empty(103, 7).update(np.ones((2, 3)))
