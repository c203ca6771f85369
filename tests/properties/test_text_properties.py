"""Properties of the language-model primitives: the synthetic languages (their probabilities and
entropies against an exact enumeration of every sequence), the autoregressive sampler (ids in
the vocabulary, excluded ids never drawn, the greedy limit of the nucleus), and bits per
byte."""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowjax.data.languages import MarkovLanguage, NoisyCopyLanguage
from flowjax.metrics import bits_per_byte
from flowjax.solvers import autoregressive_sample

from .strategies import arrays, fewer_examples, float32s, raises_naming, seeds, typed_key


def _all_sequences(vocab_size: int, seq_len: int) -> np.ndarray:
    """Every sequence of the language, (V^L, L) int32."""
    return np.asarray(list(itertools.product(range(vocab_size), repeat=seq_len)), np.int32)


languages = st.one_of(
    st.builds(
        lambda v, length, order, concentration, seed: MarkovLanguage(
            v, length, min(order, length), concentration, seed
        ),
        st.integers(2, 3),
        st.integers(1, 4),
        st.integers(1, 2),
        float32s(0.05, 5.0),
        seeds,
    ),
    st.builds(
        lambda v, half, noise, concentration, seed: NoisyCopyLanguage(
            v, 2 * half, noise, concentration, seed
        ),
        st.integers(2, 3),
        st.integers(1, 2),
        float32s(1e-3, 1.0),
        float32s(0.05, 5.0),
        seeds,
    ),
)


@fewer_examples(2)
@given(language=languages)
def test_language_probabilities_and_entropy_match_an_enumeration(language):
    """Over all V^L sequences: the probabilities sum to 1, -sum p log p is the closed-form
    entropy, the JAX log-probabilities are the NumPy ones, and sampled sequences are in the
    vocabulary with a finite log-probability."""
    sequences = _all_sequences(language.vocab_size, language.seq_len)
    log_p = language.log_prob(sequences)
    p = np.exp(log_p)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-9)
    entropy = -np.sum(p * np.where(p > 0, log_p, 0.0))  # 0 log 0 = 0: impossible sequences
    np.testing.assert_allclose(entropy, language.entropy, rtol=1e-8, atol=1e-10)
    assert language.perplexity_floor == math.exp(language.entropy / language.seq_len)
    representable = log_p > -80.0  # every factor above float32's smallest normal number
    np.testing.assert_allclose(language.log_prob_jax(jnp.asarray(sequences))[representable],
                               log_p[representable], rtol=1e-4, atol=1e-4)
    samples = language.sample(np.random.default_rng(0), 16)
    assert samples.dtype == np.int32 and samples.shape == (16, language.seq_len)
    assert np.all(np.isfinite(language.log_prob(samples)))


@given(
    name=st.sampled_from(("markov", "noisy_copy")),
    defect=st.sampled_from(("id too large", "negative id", "length", "unbatched", "floats")),
)
def test_language_log_prob_checks_its_tokens(name, defect):
    language = MarkovLanguage(3, 4) if name == "markov" else NoisyCopyLanguage(3, 4)
    tokens, exception = np.zeros((2, 4), np.int32), ValueError
    if defect == "id too large":
        tokens[1, 2] = 3
    elif defect == "negative id":
        tokens[0, 0] = -1
    elif defect == "length":
        tokens = np.zeros((2, 5), np.int32)
    elif defect == "unbatched":
        tokens = np.zeros((4,), np.int32)
    else:
        tokens, exception = tokens.astype(np.float32), TypeError
    with raises_naming(exception, "tokens"):
        language.log_prob(tokens)


V = 5


def _bigram_decode(table):
    """An autoregressive model whose next-token logits are a row of `table` (V + 1, V) chosen by
    the previous token (id V is a BOS); it keeps no cache."""

    def decode(tokens, cache):
        return table[tokens], cache

    return decode


@functools.partial(jax.jit, static_argnames=("num_tokens", "top_p", "exclude"))
def _bigram_sample(key, table, prompt, num_tokens, top_p, exclude):
    return autoregressive_sample(
        key, _bigram_decode(table), None, prompt, num_tokens, top_p=top_p, exclude=exclude
    )


@fewer_examples(2)
@given(
    batch=st.sampled_from((1, 3)),
    num_tokens=st.sampled_from((1, 4)),
    exclude=st.sampled_from(((), (0,), (1, 3))),
    seed=seeds,
    data=st.data(),
)
def test_autoregressive_sample_draws_allowed_ids(batch, num_tokens, exclude, seed, data):
    """(B, N) int32 ids in [0, V), none of them excluded, also where an excluded id is the most
    likely; with a tiny nucleus every draw is the most likely allowed id (greedy decoding)."""
    table = jnp.asarray(data.draw(arrays((V + 1, V), -4.0, 4.0)))
    if exclude:
        table = table.at[:, exclude[0]].set(10.0)
    prompt = jnp.full((batch, 1), V, jnp.int32)
    tokens = np.asarray(_bigram_sample(typed_key(seed), table, prompt, num_tokens, 1.0, exclude))
    assert tokens.dtype == np.int32 and tokens.shape == (batch, num_tokens)
    assert np.all((tokens >= 0) & (tokens < V)) and not np.isin(tokens, exclude).any()

    greedy = np.asarray(_bigram_sample(typed_key(seed), table, prompt, num_tokens, 1e-6, exclude))
    allowed = table.at[:, exclude].set(-jnp.inf) if exclude else table
    probs = np.asarray(jax.nn.softmax(allowed, axis=-1))  # ties as the sampler sees them
    previous = np.full(batch, V)
    for i in range(num_tokens):
        previous = probs[previous].argmax(-1)
        np.testing.assert_array_equal(greedy[:, i], previous)


@given(
    defect=st.sampled_from(
        ("float prompt", "unbatched prompt", "empty prompt", "no tokens", "top_p 0",
         "temperature 0", "exclude too large", "exclude negative")
    )
)
def test_autoregressive_sample_checks_its_input(defect):
    arguments = dict(prompt=jnp.full((2, 1), V, jnp.int32), num_tokens=2, top_p=1.0,
                     temperature=1.0, exclude=())
    argument = {
        "float prompt": "prompt", "unbatched prompt": "prompt", "empty prompt": "prompt",
        "no tokens": "num_tokens", "top_p 0": "top_p", "temperature 0": "temperature",
        "exclude too large": "exclude", "exclude negative": "exclude",
    }[defect]
    if defect == "float prompt":
        arguments["prompt"] = jnp.zeros((2, 1))
    elif defect == "unbatched prompt":
        arguments["prompt"] = jnp.zeros((2,), jnp.int32)
    elif defect == "empty prompt":
        arguments["prompt"] = jnp.zeros((2, 0), jnp.int32)
    elif defect == "no tokens":
        arguments["num_tokens"] = 0
    elif defect == "top_p 0":
        arguments["top_p"] = 0.0
    elif defect == "temperature 0":
        arguments["temperature"] = 0.0
    elif defect == "exclude too large":
        arguments["exclude"] = (V,)
    else:
        arguments["exclude"] = (-1,)
    table = jnp.zeros((V + 1, V))
    with raises_naming(ValueError, argument):
        autoregressive_sample(typed_key(0), _bigram_decode(table), None, **arguments)


@given(
    num_bytes=st.lists(st.integers(1, 50), min_size=1, max_size=4),
    bits=float32s(0.0, 16.0),
)
def test_bits_per_byte_of_a_fixed_code_length(num_bytes, bits):
    """Sequences coded at `bits` bits per byte, log p = -bits ln 2 n_bytes, give exactly `bits`."""
    num_bytes = np.asarray(num_bytes)
    log_likelihood = -bits * math.log(2.0) * num_bytes
    np.testing.assert_allclose(bits_per_byte(log_likelihood, num_bytes), bits, rtol=1e-12,
                               atol=1e-12)


@given(defect=st.sampled_from(("shapes", "negative bytes", "no bytes", "fractional bytes")))
def test_bits_per_byte_checks_its_input(defect):
    log_likelihood, num_bytes, argument = np.log([0.5, 0.25]), np.asarray([1, 2]), "num_bytes"
    if defect == "shapes":
        num_bytes = np.asarray([1, 2, 3])
    elif defect == "negative bytes":
        num_bytes = np.asarray([3, -1])
    elif defect == "no bytes":
        num_bytes = np.asarray([0, 0])
    else:
        num_bytes = np.asarray([1.5, 2.0])
    with raises_naming(ValueError, argument):
        bits_per_byte(log_likelihood, num_bytes)
