"""Exact byte-level probabilities (flowjax.solvers.byte_level) against known answers: Markov
chains over bytes whose exact token-level model is enumerated, the byte tokenizer (where bytes
are tokens), the chain rule, the count of model calls, and bad input refused."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from flowjax.data import ByteTokenizer, HFTokenizer, MaxPrefixTokenizer
from flowjax.models import GPT2, GPT2Config
from flowjax.solvers.byte_level import (
    END,
    ByteLevelModel,
    ensemble_next_byte_log_probs,
    exact_token_model,
    logits_token_model,
    naive_next_byte_log_probs,
    sample_bytes,
    token_healing_next_byte_log_probs,
)

A, B = ord("A"), ord("B")


def chain_texts(alphabet: bytes, length: int, order: int, transition, start):
    """Every text of `length` bytes and its probability under an order-`order` Markov chain:
    the first `order` bytes from `start(prefix)`, then transition(last `order` bytes, byte)."""
    texts, probs = [], []
    for text in itertools.product(alphabet, repeat=length):
        text = bytes(text)
        p = start(text[:order])
        for j in range(order, length):
            p *= transition(text[j - order : j], text[j])
        texts.append(text)
        probs.append(p)
    return texts, np.asarray(probs)


def chain_next(text: bytes, alphabet: bytes, order: int, transition, start, length: int):
    """The chain's true next-byte distribution {byte or END: probability} after `text`."""
    if len(text) == length:
        return {END: 1.0}
    if len(text) >= order:
        return {b: transition(text[-order:], b) for b in alphabet}
    continuations = [bytes(c) for c in itertools.product(alphabet, repeat=order - len(text))]
    here = sum(start(text + c) for c in continuations)
    return {
        b: sum(start(text + c) for c in continuations if c[0] == b) / here for b in alphabet
    }


# The two-state chain over {A, B} with vocabulary {A, B, AA} (Phan et al., 2024) --------------

TWO_STATE = {(A, A): 0.7, (A, B): 0.3, (B, A): 0.4, (B, B): 0.6}


def two_state(length: int = 8):
    texts, probs = chain_texts(
        b"AB", length, 1, lambda prev, b: TWO_STATE[(prev[-1], b)], lambda first: 0.5
    )
    tokenizer = MaxPrefixTokenizer(["A", "B", "AA"])
    return ByteLevelModel(exact_token_model(texts, probs, tokenizer), tokenizer)


def test_naive_conditioning_is_zero_and_the_lemma_is_exact():
    lm = two_state()
    assert np.exp(naive_next_byte_log_probs(lm, b"A")[A]) == 0.0  # [A] is never followed by A
    exact = np.exp(lm.next_byte_log_probs(lm.prefix(b"A")))
    np.testing.assert_allclose(exact[[A, B]], [0.7, 0.3], atol=1e-12)
    np.testing.assert_allclose(np.exp(lm.log_prob(b"AAB")), 0.5 * 0.7 * 0.3, rtol=1e-12)
    np.testing.assert_allclose(np.exp(token_healing_next_byte_log_probs(lm, b"A")[A]), 0.7)


# A third-order binary chain and larger vocabularies --------------------------------------------

RNG = np.random.default_rng(0)
THIRD = {bytes(c): RNG.uniform(0.1, 0.9) for c in itertools.product(b"01", repeat=3)}
LENGTH = 8


def third(prev: bytes, b: int) -> float:
    p_one = THIRD[prev]
    return p_one if b == ord("1") else 1.0 - p_one


def third_start(first: bytes) -> float:
    return float(np.prod([0.6 if c == ord("1") else 0.4 for c in first]))


def bpe_tokenizer(tmp_path_factory) -> HFTokenizer:
    """A byte-level BPE with 12 merges trained with `tokenizers` on the chain's likeliest texts
    (no pre-tokenizer split, so that prefixes of encodings are encodings)."""
    texts, probs = chain_texts(b"01", LENGTH, 3, third, third_start)
    corpus = [texts[i].decode() for i in np.argsort(-probs)[:64]] * 8
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=15, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=["0", "1"],
    )
    tok.train_from_iterator(corpus, trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tok.save(str(path))
    return HFTokenizer(str(path))


@pytest.fixture(scope="module")
def tokenizers_(tmp_path_factory):
    return {
        "maximum prefix": MaxPrefixTokenizer(["0", "1", "00", "01", "11", "000", "0110", "1111"]),
        "BPE": bpe_tokenizer(tmp_path_factory),
    }


@pytest.mark.parametrize("name", ["maximum prefix", "BPE"])
def test_every_next_byte_probability_equals_the_enumeration(x64, tokenizers_, name):
    tokenizer = tokenizers_[name]
    assert max(len(b or b"") for b in tokenizer.token_bytes) >= 3
    texts, probs = chain_texts(b"01", LENGTH, 3, third, third_start)
    lm = ByteLevelModel(exact_token_model(texts, probs, tokenizer), tokenizer)
    worst = 0.0
    for n in range(LENGTH + 1):
        for prefix in itertools.product(b"01", repeat=n):
            prefix = bytes(prefix)
            got = np.exp(lm.next_byte_log_probs(lm.prefix(prefix)))
            for b, p in chain_next(prefix, b"01", 3, third, third_start, LENGTH).items():
                worst = max(worst, abs(got[b] - p))
            assert abs(got.sum() - 1.0) < 1e-12
    assert worst < 1e-9


def test_chain_rule_over_bytes_and_linear_calls(tokenizers_):
    tokenizer = tokenizers_["BPE"]
    texts, probs = chain_texts(b"01", LENGTH, 3, third, third_start)
    lm = ByteLevelModel(exact_token_model(texts, probs, tokenizer), tokenizer)
    text = texts[int(np.argmax(probs))][:7] + b"0"
    per_byte = lm.byte_log_likelihoods(text)
    np.testing.assert_allclose(per_byte.sum(), lm.log_prob(text), rtol=1e-9)
    np.testing.assert_allclose(lm.log_prob(text), np.log(probs[texts.index(text)]), rtol=1e-9)
    state = lm.prefix(b"")
    for j, byte in enumerate(text):
        state = lm.advance(state, byte)
        assert state.calls == j + 2  # one call for the prompt, then one per byte
    assert len(state.splits) <= lm.longest + 1


def test_sampling_reproduces_the_chain():
    lm = two_state(length=4)
    draws = [sample_bytes(jax.random.key(i), lm, b"A", 3)[0] for i in range(600)]
    assert all(len(d) == 3 and set(d) <= {A, B} for d in draws)  # the text ends after 4 bytes
    freq_a = np.mean([d[0] == A for d in draws])
    assert abs(freq_a - 0.7) < 4 * np.sqrt(0.21 / 600)
    _, states = sample_bytes(jax.random.key(0), lm, b"A", 5)
    assert states[0].data[:4] and states[0].calls == 4  # stopped at the end of text


# Networks: the byte tokenizer (bytes are tokens) and GPT-2 ------------------------------------


@pytest.fixture(scope="module")
def byte_gpt2():
    config = GPT2Config(vocab_size=258, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    model = GPT2(config, rngs=nnx.Rngs(0))
    return model, logits_token_model(model, max_length=64)


def test_with_bytes_as_tokens_the_byte_distribution_is_the_models(byte_gpt2):
    """Single-byte tokens: no token can start before the last byte and reach past it, so the
    next-byte distribution is the network's next-token one over the 257 byte and end ids."""
    model, token_model = byte_gpt2
    bos = 257  # an id outside the byte tokenizer's 257 ids, read as the context
    lm = ByteLevelModel(token_model, _PaddedBytes(), context=(bos,))
    state = lm.prefix(b"abc")
    assert state.calls == 1
    logits = model(jnp.asarray([[bos, *b"abc"]]))[0, -1, :257]
    got = lm.next_byte_log_probs(state)
    np.testing.assert_allclose(got, jax.nn.log_softmax(logits), atol=1e-5)
    after = lm.advance(state, ord("d"))
    np.testing.assert_allclose(
        lm.prefix_log_prob(after), float(model.log_prob(jnp.asarray([[bos, *b"abcd"]]))[0]),
        rtol=1e-5,
    )
    both = ensemble_next_byte_log_probs([lm, lm], [state, state], weights=[1.0, 3.0])
    np.testing.assert_allclose(both, got, atol=1e-12)  # a model averaged with itself


class _PaddedBytes(ByteTokenizer):
    """The byte tokenizer inside a vocabulary of 258 ids (id 257 a BOS)."""

    vocab_size = 258
    token_bytes = ByteTokenizer.token_bytes + (None,)


# Bad input -----------------------------------------------------------------------------------


def test_bad_input_is_refused(tmp_path):
    lm = two_state(length=4)
    with pytest.raises(ValueError, match="starts no token"):
        lm.prefix(b"AC")
    with pytest.raises(ValueError, match=r"byte must be an int in \[0, 256\)"):
        lm.advance(lm.prefix(b"A"), 300)
    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    wordpiece.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="not byte-level"):
        ByteLevelModel(lm.model, HFTokenizer(str(tmp_path / "tokenizer.json")))
    with pytest.raises(ValueError, match="not a byte-level tokenizer"):
        ByteLevelModel(lm.model, object())
    wrong = ByteLevelModel(lambda seqs, start: (np.zeros(len(seqs)), np.zeros((len(seqs), 9))),
                           MaxPrefixTokenizer(["A", "B"]))
    with pytest.raises(ValueError, match="share one vocabulary"):
        wrong.prefix(b"A")
    with pytest.raises(ValueError, match="context token"):
        ByteLevelModel(logits_token_model(lambda t: jnp.zeros((*t.shape, 3)), max_length=8),
                       MaxPrefixTokenizer(["A", "B"])).prefix(b"A")


def test_byte_level_bpe_encodes_bytes_as_it_encodes_text(tokenizers_):
    tokenizer = tokenizers_["BPE"]
    for text in ("0110", "0001111", "1"):
        assert tokenizer.encode_bytes(text.encode()) == tokenizer.encode(text)
        assert b"".join(tokenizer.token_bytes[i] for i in tokenizer.encode(text)) == text.encode()
