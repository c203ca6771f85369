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

from flowjax.data import ByteTokenizer, HFTokenizer, MaxPrefixTokenizer, byte_level_alphabet
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


# GPT-2 converted from a local checkpoint, with a GPT-2-style tokenizer -------------------------


MERGES = [("t", "h"), ("h", "e"), ("i", "n"), ("e", "r"), ("a", "n"), ("\u0120", "t"),
          ("\u0120", "a"), ("th", "e"), ("\u0120t", "he"), ("o", "n"), ("r", "e"), ("a", "t"),
          ("e", "n"), ("s", "t"), ("in", "g"), ("\u0120", "s"), ("o", "r"), ("a", "r"),
          ("\u0120", "w"), ("e", "s"), ("l", "e"), ("\u0120", "c"), ("t", "e"), ("i", "s"),
          ("a", "l"), ("e", "d"), ("th", "er"), ("e", "a"), ("the", "a"), ("thea", "t")]
"""30 merges (U+0120 is the byte-level character of a space)."""


def gpt2_style_tokenizer(path) -> HFTokenizer:
    """A byte-level BPE with GPT-2's pre-tokenizer and 97 ids, as the tiny checkpoint has: 66
    characters, 30 merges and <|endoftext|> = 96 (the checkpoint's BOS / EOS)."""
    character = {b: ch for ch, b in byte_level_alphabet().items()}
    letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!"
    vocab = {character[b]: i for i, b in enumerate(letters)}
    for left, right in MERGES:
        vocab[left + right] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(path))
    return HFTokenizer(str(path))


def test_gpt2_from_a_local_checkpoint_sums_its_valid_covers(tmp_path):
    """The lemma through `logits_token_model` (one padded batch of split points) equals the sum,
    cover by cover, of GPT-2's own log p(cover) over the covers that re-encode to themselves."""
    from tests.test_gpt2 import CHECKPOINT  # the tiny GPT-2 saved by transformers

    from flowjax.models import load_gpt2

    tokenizer = gpt2_style_tokenizer(tmp_path / "tokenizer.json")
    assert tokenizer.vocab_size == 97 and tokenizer.eos_id == 96
    for text in ("the theater", "héllo wörld  x!", "ab\u00e9"):
        assert tokenizer.encode_bytes(text.encode()) == tokenizer.encode(text)
        assert tokenizer.encode_bytes_batch([text.encode()]) == [tokenizer.encode(text)]
    model = load_gpt2(CHECKPOINT)
    lm = ByteLevelModel(logits_token_model(model, max_length=32), tokenizer, context=(96,))
    text = b"the"
    covers = []
    for i in range(len(text)):
        head = tuple(tokenizer.encode_bytes(text[:i]))
        for v in lm.tokens_starting_with(text[i:]):
            cover = head + (int(v),)
            if tuple(tokenizer.encode_bytes(text[:i] + lm.token_bytes[v])) == cover:
                covers.append(cover)
    assert len(covers) >= 3
    longest = max(len(c) for c in covers)
    padded = np.asarray([(96, *c) + (0,) * (longest - len(c)) for c in covers])
    each = []
    for row, cover in zip(padded, covers):
        each.append(float(model.log_prob(jnp.asarray(row[None, : len(cover) + 1]))[0]))
    np.testing.assert_allclose(lm.log_prob(text), np.logaddexp.reduce(each), rtol=1e-5)
    state = lm.prefix(text)
    assert state.calls == 1
    np.testing.assert_allclose(np.exp(lm.next_byte_log_probs(state)).sum(), 1.0, rtol=1e-12)


def test_the_cached_model_equals_the_full_passes(tmp_path):
    """Byte by byte through the key/value cache: the same next-byte distributions and prefix
    probabilities as full passes, one decoding step per byte."""
    from tests.test_gpt2 import CHECKPOINT

    from flowjax.models import load_gpt2
    from flowjax.solvers.byte_level import cached_token_model

    tokenizer = gpt2_style_tokenizer(tmp_path / "tokenizer.json")
    model = load_gpt2(CHECKPOINT)
    full = ByteLevelModel(logits_token_model(model, max_length=32), tokenizer, context=(96,))
    cached = ByteLevelModel(
        cached_token_model(model.decode, model.init_cache, max_length=32), tokenizer,
        context=(96,),
    )
    a, b = full.prefix(b"th"), cached.prefix(b"th")
    for byte in b"e theat":
        np.testing.assert_allclose(cached.next_byte_log_probs(b), full.next_byte_log_probs(a),
                                   atol=2e-5)
        a, b = full.advance(a, byte), cached.advance(b, byte)
    np.testing.assert_allclose(cached.prefix_log_prob(b), full.prefix_log_prob(a), rtol=1e-5)
    assert b.calls == 1 + len(b"e theat")


def test_the_config_trains_a_model_that_gives_byte_probabilities(tokenizers_, tmp_path):
    """configs/bytes/markov.py (smoke) on a corpus of the chain's texts with the trained BPE:
    the trainer's model, loaded, reads the bytes through the lemma (BOS = the extra id)."""
    from flax import nnx as _nnx

    from flowjax.train import load_config_file, train
    from flowjax.train.trained import load_trained_flow

    tokenizer = tokenizers_["BPE"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts, probs = chain_texts(b"01", LENGTH, 3, third, third_start)
    rng = np.random.default_rng(0)
    for i in range(20):
        picks = rng.choice(len(texts), size=40, p=probs / probs.sum())
        (corpus / f"{i}.txt").write_bytes(b"".join(texts[j] for j in picks))
    config = load_config_file("configs/bytes/markov.py", "smoke")
    config.data.update(path=str(corpus), tokenizer=tokenizer.path, cache_dir=str(tmp_path / "c"))
    config.evaluate.after_training = False
    train(config, str(tmp_path / "run"))
    flow = load_trained_flow(config, str(tmp_path / "run"))
    net = _nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
    vocab = tokenizer.vocab_size
    lm = ByteLevelModel(
        logits_token_model(lambda t: net(t)[..., :vocab], max_length=config.data.seq_len),
        tokenizer, context=(vocab,),
    )
    state = lm.advance(lm.prefix(b"0110"), ord("1"))
    probs_next = np.exp(lm.next_byte_log_probs(state))
    assert state.calls == 2 and abs(probs_next.sum() - 1.0) < 1e-9
    assert probs_next[[ord("0"), ord("1"), END]].sum() > 1.0 - 1e-9  # only spelled bytes
