"""Guarantee regions (`flowjax.explain.guarantee`) and LIME (`flowjax.explain.lime`): the cases
with known answers of the issue, the series constant, and the stated confidence in repeated
runs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.explain import guarantee
from flowjax.explain.lime import LinearSurrogate, lime_explanation, lime_surrogate


def test_series_constant_and_test_sizes():
    n = 10**6
    i = np.arange(2, n, dtype=np.float64)
    partial = np.sum(1.0 / (i * np.log(i) ** 2))
    tail = 1.0 / math.log(n)  # the integral of the rest; its correction is below 1e-8
    assert guarantee.SERIES_CONSTANT == pytest.approx(partial + tail, abs=1e-6)
    assert guarantee.SERIES_CONSTANT > 1.9428735 + 0.16  # the reference code's value is short
    assert guarantee.test_size(0.99, 0.99) == 459
    # The schedule spends exactly delta over all tests.
    spent = sum(1 - guarantee.test_confidence(k, 0.05) for k in range(2, n))
    assert spent == pytest.approx(0.05 * partial / guarantee.SERIES_CONSTANT, rel=1e-9)


def test_largest_empty_box_against_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = np.array([0.5, 0.5])
        negatives = rng.uniform(0, 1, (6, 2))
        l, u = guarantee.largest_empty_box(x, negatives, np.zeros(2), np.ones(2))
        assert not np.any(np.all((negatives > l) & (negatives < u), axis=1))
        assert np.all(l <= x) and np.all(x <= u)
        # Every box whose sides sit at negatives' coordinates (or the domain's edges) that holds
        # x and no negative: the best volume among them is the optimum.
        best = 0.0
        cand = [np.r_[0.0, negatives[:, 0]], np.r_[0.0, negatives[:, 1]],
                np.r_[1.0, negatives[:, 0]], np.r_[1.0, negatives[:, 1]]]
        for l0 in cand[0][cand[0] <= 0.5]:
            for l1 in cand[1][cand[1] <= 0.5]:
                for u0 in cand[2][cand[2] >= 0.5]:
                    for u1 in cand[3][cand[3] >= 0.5]:
                        bl, bu = np.array([l0, l1]), np.array([u0, u1])
                        if not np.any(np.all((negatives > bl) & (negatives < bu), axis=1)):
                            best = max(best, (u0 - l0) * (u1 - l1))
        assert np.prod(u - l) == pytest.approx(best, rel=1e-12)


def test_the_greedy_box_past_max_nodes_excludes_every_negative_and_shrinks_from_start():
    rng = np.random.default_rng(1)
    x = np.zeros(12)
    negatives = rng.uniform(-1, 1, (300, 12))
    start = (np.full(12, -0.9), np.full(12, 0.8))
    l, u = guarantee.largest_empty_box(x, negatives, -np.ones(12), np.ones(12), max_nodes=1,
                                       start=start)
    assert not np.any(np.all((negatives > l) & (negatives < u), axis=1))
    assert np.all(start[0] <= l) and np.all(l <= x) and np.all(x <= u) and np.all(u <= start[1])
    # A cluster of negatives beyond x_0 = 0.5 is removed by the cut of x_0 at its edge (and at
    # most a few slivers near the other edges), not by cuts along the other dimensions.
    cluster = np.c_[rng.uniform(0.5, 1.0, (200, 1)), rng.uniform(-1, 1, (200, 11))]
    l, u = guarantee.largest_empty_box(x, cluster, -np.ones(12), np.ones(12), max_nodes=1)
    assert u[0] == pytest.approx(cluster[:, 0].min())
    one_cut = np.log(1.0 + cluster[:, 0].min()) + 11 * np.log(2.0)
    assert one_cut - 0.02 < np.sum(np.log(u - l)) <= one_cut


def test_a_slab_in_sixteen_dimensions_gives_a_box_that_holds_rho_on_fresh_points():
    # |f - g| = |4 mean(x)| < 1 on the slab |mean(x)| < 1/4 of [-1, 1]^16: the all-dimension
    # search runs past max_nodes and ends on the greedy box.
    surrogate = lambda z: linear_model(z) + 4.0 * jnp.mean(z, axis=-1)  # noqa: E731
    agree = guarantee.surrogate_agreement(linear_model, surrogate, tolerance=1.0)
    x, lower, upper = np.zeros(16), -np.ones(16), np.ones(16)
    region = guarantee.guarantee_region(agree, x, lower, upper, jax.random.key(2), max_nodes=50)
    assert region.passed
    fresh = np.random.default_rng(0).uniform(region.lower, region.upper, (20_000, 16))
    assert np.mean(agree(fresh.astype(np.float32))) >= 0.99
    assert region.log_volume() > 16 * np.log(0.25)  # wider than the cube inside the slab


def linear_model(z):
    return jnp.sum(jnp.sin(z), axis=-1)


def test_a_surrogate_equal_to_the_model_gets_the_whole_domain():
    agree = guarantee.surrogate_agreement(linear_model, linear_model, tolerance=1e-3)
    x, lower, upper = np.full(3, 0.2), -np.ones(3), np.ones(3)
    region = guarantee.guarantee_region(agree, x, lower, upper, jax.random.key(0))
    assert region.passed
    np.testing.assert_array_equal(region.lower, lower)
    np.testing.assert_array_equal(region.upper, upper)
    # One passing test per search: 3 single dimensions, 1 pair, 1 triple.
    assert region.tests == 5


@pytest.mark.parametrize("per_dimension", [True, False])
def test_a_slope_along_x1_gives_the_half_width_eps_over_c(per_dimension):
    c, eps = 4.0, 1.0  # |f - g| = |c x_1| < eps exactly when |x_1| < 0.25
    surrogate = lambda z: linear_model(z) + c * z[:, 0]  # noqa: E731
    agree = guarantee.surrogate_agreement(linear_model, surrogate, tolerance=eps)
    x, lower, upper = np.zeros(2), -np.ones(2), np.ones(2)
    region = guarantee.guarantee_region(agree, x, lower, upper, jax.random.key(1), rho=0.99,
                                        delta=0.01, per_dimension=per_dimension)
    assert region.passed
    # At purity 0.99 the box may reach past the region by about 1% of its width, not more.
    assert region.lower[0] == pytest.approx(-eps / c, abs=0.02)
    assert region.upper[0] == pytest.approx(eps / c, abs=0.02)
    np.testing.assert_allclose([region.lower[1], region.upper[1]], [-1.0, 1.0])


def impure_fraction(rho: float, delta: float, runs: int) -> float:
    """g disagrees with f on x > 0.3 of [0, 1] and x = 0.1, so a box [l, u] has purity
    min(1, (0.3 - l) / (u - l)): the fraction of runs whose box has purity < rho."""
    agree = lambda z: z[:, 0] <= 0.3  # noqa: E731
    impure = 0
    for seed in range(runs):
        region = guarantee.guarantee_region(agree, np.array([0.1]), np.zeros(1), np.ones(1),
                                            jax.random.key(seed), rho=rho, delta=delta)
        impure += (0.3 - region.lower[0]) / (region.upper[0] - region.lower[0]) < rho
    return impure / runs


def test_the_stated_confidence_holds_in_repeated_runs(monkeypatch):
    rho, delta, runs = 0.5, 0.1, 200
    # At most delta of the boxes may be impure (binomial sd at 200 runs: 0.021).
    assert impure_fraction(rho, delta, runs) <= delta + 0.05
    # The check has teeth: tests of one point each (no confidence) pass the whole, 30% pure,
    # domain in 30% of the runs.
    monkeypatch.setattr(guarantee, "test_size", lambda rho, confidence: 1)
    assert impure_fraction(rho, delta, runs) > 0.25


def test_lime_recovers_a_linear_model_and_explains_a_batch():
    w = jnp.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])  # (d=3, K=2)
    model = lambda z: z @ w + jnp.array([0.1, -0.2])  # noqa: E731
    x = jnp.array([0.3, -0.4, 1.0])
    surrogate = lime_surrogate(model, x, jax.random.key(0), num_samples=400, ridge=0.0)
    np.testing.assert_allclose(surrogate.weights, w, atol=1e-4)
    np.testing.assert_allclose(surrogate(x[None])[0], model(x[None])[0], atol=1e-4)
    batch = jnp.stack([x, -x])
    attributions = lime_explanation(model, batch, jax.random.key(1), target=jnp.array([0, 1]),
                                    num_samples=400, ridge=0.0)
    np.testing.assert_allclose(attributions, jnp.stack([w[:, 0], w[:, 1]]), atol=1e-4)
    assert isinstance(surrogate, LinearSurrogate)


def test_bad_input_is_refused_with_a_clear_error():
    agree = lambda z: np.ones(len(z), bool)  # noqa: E731
    x, lo, hi = np.zeros(2), -np.ones(2), np.ones(2)
    with pytest.raises(ValueError, match="rho must be in"):
        guarantee.guarantee_region(agree, x, lo, hi, jax.random.key(0), rho=1.0)
    with pytest.raises(ValueError, match="delta"):
        guarantee.guarantee_region(agree, x, lo, hi, jax.random.key(0), delta=0.0)
    with pytest.raises(ValueError, match="must contain x"):
        guarantee.guarantee_region(agree, np.full(2, 2.0), lo, hi, jax.random.key(0))
    with pytest.raises(ValueError, match="disagrees with the model at x"):
        guarantee.guarantee_region(lambda z: np.zeros(len(z), bool), x, lo, hi,
                                   jax.random.key(0))
    with pytest.raises(ValueError, match="tolerance"):
        guarantee.surrogate_agreement(linear_model, linear_model, tolerance=0.0)
