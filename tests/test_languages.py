"""The synthetic languages: exact entropies and likelihoods against brute-force enumeration,
samples against the enumerated distribution, and the "synthetic_text" source's resume and
process split."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.data.languages import MarkovLanguage, NoisyCopyLanguage, make_language

LANGUAGES = [
    MarkovLanguage(3, 4, order=1, concentration=0.5, language_seed=1),
    MarkovLanguage(2, 5, order=2, concentration=0.3),
    NoisyCopyLanguage(3, 4, noise=0.2, concentration=0.7),
]


@pytest.mark.parametrize("lang", LANGUAGES, ids=lambda x: type(x).__name__)
def test_entropy_and_likelihood_equal_the_enumeration(lang):
    sequences = np.array(list(itertools.product(range(lang.vocab_size), repeat=lang.seq_len)))
    log_p = lang.log_prob(sequences)
    p = np.exp(log_p)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(lang.entropy, -(p * log_p).sum(), rtol=1e-10)
    np.testing.assert_allclose(lang.perplexity_floor, np.exp(lang.entropy / lang.seq_len))
    np.testing.assert_allclose(lang.log_prob_jax(jnp.asarray(sequences)), log_p, atol=2e-5)
    samples = lang.sample(np.random.default_rng(0), 100_000)
    index = (samples * lang.vocab_size ** np.arange(lang.seq_len)[::-1]).sum(axis=1)
    counts = np.bincount(index, minlength=len(sequences)) / len(samples)
    assert 0.5 * np.abs(counts - p).sum() < 0.015  # sampling noise ~0.005 at n = 100,000


def test_markov_entropy_rate_is_the_stationary_average():
    lang = MarkovLanguage(5, 64, order=1, concentration=0.2)
    t = lang.transitions
    np.testing.assert_allclose(lang.stationary @ t, lang.stationary, atol=1e-13)
    long = lang.log_prob(lang.sample(np.random.default_rng(1), 4000))
    assert abs(-long.mean() / 64 - lang.entropy / 64) < 4 * long.std() / 64 / np.sqrt(4000)


def test_synthetic_text_source_resumes_and_splits_over_processes():
    config = dict(source="synthetic_text", name="noisy_copy", vocab_size=7, seq_len=6)
    assert data.event_shape(config) == (6,) and data.vocab_size(config) == 7
    one = data.build_dataset(config, global_batch_size=8, seed=3)
    batches = [next(one)["x"] for _ in range(3)]
    state = one.get_state()
    after = next(one)["x"]
    resumed = data.build_dataset(config, global_batch_size=8, seed=3)
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)["x"], after)
    halves = [
        data.build_dataset(config, global_batch_size=8, seed=3, process_index=i, process_count=2)
        for i in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate([next(h)["x"] for h in halves]), batches[0])
    assert data.language(config).log_prob(batches[0]).shape == (8,)


def test_bad_language_settings_are_refused():
    with pytest.raises(ValueError, match="needs an even seq_len"):
        make_language("noisy_copy", vocab_size=4, seq_len=5)
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['order'\]"):
        make_language("noisy_copy", vocab_size=4, seq_len=4, order=2)
    with pytest.raises(ValueError, match="outside the language's vocabulary"):
        LANGUAGES[0].log_prob(np.full((1, 4), 3))
    with pytest.raises(ValueError, match="is not a synthetic language"):
        data.language(dict(source="toy", name="checkerboard"))
