"""The repeated-token language of the IMDM paper and the exact factorization metrics
(`flowjax.metrics.factorization`) against closed forms and brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.data.languages import RepeatedTokenLanguage, make_language
from flowjax.metrics import (
    conditional_total_correlation,
    expected_total_correlation,
    factorization_bound,
    independent_validity,
    masked_sampler_validity,
    repeated_token_total_correlation,
    sequence_validity,
    total_correlation,
)


def _repeated_token_joint(v: int, length: int) -> np.ndarray:
    """The dense joint (V,)*L of the repeated-token language."""
    joint = np.zeros((v,) * length)
    for token in range(v):
        joint[(token,) * length] = 1.0 / v
    return joint


def test_repeated_token_samples_are_constant_rows_of_uniform_tokens():
    lang = RepeatedTokenLanguage(vocab_size=8, seq_len=10)
    x = lang.sample(np.random.default_rng(0), 16_000)
    assert x.shape == (16_000, 10) and x.dtype == np.int32
    assert np.all(x == x[:, :1])
    counts = np.bincount(x[:, 0], minlength=8)
    chi2 = ((counts - 2000.0) ** 2 / 2000.0).sum()
    assert chi2 < 30.0  # chi-square with 7 degrees of freedom: P(> 30) < 1e-4


def test_repeated_token_entropy_and_likelihood():
    lang = RepeatedTokenLanguage(50_000, 10)
    assert lang.entropy == pytest.approx(math.log(50_000))
    assert lang.entropy_rate == pytest.approx(math.log(50_000) / 10)
    assert lang.perplexity_floor == pytest.approx(50_000**0.1)
    tokens = np.array([[7] * 10, [7] * 9 + [8], [49_999] * 10])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_p = lang.log_prob(tokens)
    assert log_p.dtype == np.float64
    np.testing.assert_array_equal(log_p, [-math.log(50_000), -np.inf, -math.log(50_000)])
    np.testing.assert_allclose(lang.log_prob_jax(jnp.asarray(tokens)), log_p, rtol=1e-6)
    small = RepeatedTokenLanguage(3, 4)  # the enumeration: probabilities sum to 1
    sequences = np.array(list(itertools.product(range(3), repeat=4)))
    p = np.exp(small.log_prob(sequences))
    assert p.sum() == pytest.approx(1.0)
    assert -(p[p > 0] * np.log(p[p > 0])).sum() == pytest.approx(small.entropy)


def test_repeated_token_through_the_data_pipeline():
    config = {"source": "synthetic_text", "name": "repeated_token", "vocab_size": 11, "seq_len": 5}
    assert data.event_shape(config) == (5,) and data.vocab_size(config) == 11
    x = next(data.build_dataset(config, global_batch_size=8, seed=1))["x"]
    assert x.shape == (8, 5) and np.all(x == x[:, :1])
    lang = data.language(config)
    assert lang == make_language("repeated_token", vocab_size=11, seq_len=5)
    np.testing.assert_array_equal(lang.log_prob(x), np.full(8, -math.log(11)))


def test_sequence_validity():
    samples = np.array([[1, 1, 1], [2, 2, 3], [0, 0, 0], [4, 1, 4]])
    assert sequence_validity(samples) == 0.5
    assert sequence_validity(np.array([[5]])) == 1.0


def test_independent_validity_closed_forms():
    v, length = 32, 8
    uniform = np.full((length, v), 1.0 / v, np.float32)
    assert independent_validity(uniform) == pytest.approx(32.0**-7, rel=1e-5)
    assert independent_validity(uniform) == pytest.approx(factorization_bound(v, length))
    # IMDM's setting: 50,000^-9 underflows float32, its log does not
    assert factorization_bound(50_000, 10) == pytest.approx(50_000.0**-9)
    wide = jnp.full((2, 10, 50_000), 1.0 / 50_000, jnp.float32)
    np.testing.assert_allclose(
        independent_validity(wide, log=True), [-9 * math.log(50_000)] * 2, rtol=1e-5
    )
    one_hot = np.tile(np.eye(v)[3], (length, 1))
    assert independent_validity(one_hot) == 1.0
    batch = np.stack([uniform, one_hot.astype(np.float32)])
    np.testing.assert_allclose(independent_validity(jnp.asarray(batch)), [32.0**-7, 1.0], rtol=1e-5)


def test_independent_validity_equals_the_enumeration():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=3)  # (L, V) = (3, 3)
    brute = sum(
        np.prod([probs[i, x[i]] for i in range(3)])
        for x in itertools.product(range(3), repeat=3)
        if len(set(x)) == 1
    )
    assert independent_validity(probs) == pytest.approx(brute, rel=1e-12)


def test_total_correlation_of_the_repeated_token_language():
    v, length = 3, 3
    joint = _repeated_token_joint(v, length)
    assert total_correlation(joint) == pytest.approx((length - 1) * math.log(v), rel=1e-12)
    independent = np.einsum("i,j,k->ijk", *np.random.default_rng(1).dirichlet(np.ones(v), size=3))
    assert total_correlation(independent) == pytest.approx(0.0, abs=1e-12)
    mask = v
    x_t = np.array(list(itertools.product([0, mask], repeat=length)) + [[mask, 2, 2]])
    np.testing.assert_allclose(
        repeated_token_total_correlation(x_t, mask, v),
        conditional_total_correlation(joint, x_t, mask),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        repeated_token_total_correlation(x_t[-2:], mask, v), [2 * math.log(3), 0.0]
    )


def test_expected_total_correlation_matches_masks_monte_carlo():
    v, length, kappa, n = 50, 4, 0.3, 20_000
    rng = np.random.default_rng(2)
    x = RepeatedTokenLanguage(v, length).sample(rng, n)
    x_t = np.where(rng.random((n, length)) < kappa, x, v)
    tc = repeated_token_total_correlation(x_t, v, v)
    exact = expected_total_correlation(kappa, length, v)
    assert exact == pytest.approx(0.7**4 * 3 * math.log(50))
    assert abs(tc.mean() - exact) < 3 * tc.std() / math.sqrt(n)
    np.testing.assert_allclose(
        expected_total_correlation(np.array([0.0, 1.0]), length, v), [3 * math.log(50), 0.0]
    )


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2"):
        RepeatedTokenLanguage(1, 4)
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['concentration'\]"):
        config = {"source": "synthetic_text", "name": "repeated_token", "vocab_size": 4}
        data.language({**config, "seq_len": 3, "concentration": 0.5})
    with pytest.raises(ValueError, match="outside the language's vocabulary"):
        RepeatedTokenLanguage(4, 3).log_prob(np.full((1, 3), 4))
    with pytest.raises(ValueError, match=r"samples must have shape \(n, L\)"):
        sequence_validity(np.zeros(3, int))
    with pytest.raises(ValueError, match="must sum to 1"):
        independent_validity(np.full((3, 4), 0.3))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., L, V\)"):
        independent_validity(np.full(4, 0.25))
    with pytest.raises(ValueError, match="mask_token=2 is a token of the language"):
        repeated_token_total_correlation(np.zeros((1, 3), int), 2, 4)
    with pytest.raises(ValueError, match="reveals different tokens"):
        repeated_token_total_correlation(np.array([[1, 4, 2]]), 4, 4)
    with pytest.raises(ValueError, match=r"kappa_t must lie in \[0, 1\]"):
        expected_total_correlation(1.5, 3, 4)
    with pytest.raises(ValueError, match="joint must sum to 1"):
        total_correlation(np.full((2, 2), 0.3))
    with pytest.raises(ValueError, match="has probability 0 under joint"):
        conditional_total_correlation(_repeated_token_joint(3, 3), np.array([[0, 1, 3]]), 3)


def test_masked_sampler_validity_matches_a_simulation_of_the_ideal_sampler():
    """The true-posterior masked sampler on the repeated-token task, simulated: while all is
    masked the revealed tokens are uniform draws; after the first reveal the token is known."""
    vocab, length, kappas = 4, 3, np.array([0.0, 0.3, 0.7, 1.0])
    rng = np.random.default_rng(0)
    n = 200_000
    masked = np.ones((n, length), bool)
    known = np.zeros(n, bool)  # the sequence's token is fixed once a position is revealed
    valid = np.ones(n, bool)
    for a, b in zip(kappas[:-1], kappas[1:]):
        reveal = masked & (rng.random((n, length)) < (b - a) / (1 - a))
        draws = rng.integers(0, vocab, (n, length))
        low = np.where(reveal, draws, vocab).min(axis=1)
        high = np.where(reveal, draws, -1).max(axis=1)
        first = ~known & reveal.any(axis=1)
        valid &= ~first | (low == high)  # the first revealed tokens must agree
        known |= first
        masked &= ~reveal
    exact = masked_sampler_validity(kappas, length, vocab)
    assert abs(valid.mean() - exact) < 4 * np.sqrt(exact * (1 - exact) / n)
    assert abs(masked_sampler_validity([0.0, 1.0], 8, 32) - factorization_bound(32, 8)) < 1e-20
    with pytest.raises(ValueError, match="ascending"):
        masked_sampler_validity([0.0, 0.5, 0.5, 1.0], 3, 4)
    with pytest.raises(ValueError, match="end at 1"):
        masked_sampler_validity([0.0, 0.5], 3, 4)
