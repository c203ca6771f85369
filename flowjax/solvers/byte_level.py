"""Exact byte-level probabilities from a tokenized autoregressive language model.

Phan et al. (2024), "Understanding and Mitigating Tokenization Bias in Language Models", and
Phan et al. (2025), "Exact Byte-Level Probabilities from Tokenized Language Models for FIM-Tasks
and Model Ensembles". A language model over tokens also defines a distribution over bytes (the
bytes its token sequences spell), but conditioning it on the *tokens* of a prompt is biased: a
prompt that ends inside a token (or whose last token could still merge with what follows) is
tokenized as if the text stopped there, which the model never saw. E.g. with the vocabulary
{A, B, AA} and maximum-prefix encoding, text "AA..." is never encoded as [A, A], so the model's
P(next token starts with A | [A]) is 0 although P(x_2 = A | x_1 = A) is not.

Byte-Token Representation Lemma (paper 2, Lemma 1; paper 1, section 4): every token sequence
whose bytes start with x_1..n has a unique shortest prefix t_1..t_k that reaches byte n, the
*cover* of x_1..n: t_1..t_{k-1} spells x_1..i for some i < n and t_k starts with x_{i+1..n}.
Covers partition the event "the text starts with x_1..n", so

    P(x_1..n) = sum over covers t of P(t_1..t_k).                                   (1)

A model trained on tokenized text gives (almost) no mass to *invalid* token sequences (ones the
tokenizer never outputs), so the covers are restricted to valid ones: for a tokenizer whose
prefixes of valid encodings are valid (maximum-prefix encoding, BPE), t_1..t_{k-1} is then the
encoding of x_1..i, one candidate per split point i, and i > n - (longest token). Next bytes:

    P(x_{n+1} = b | x_1..n) = P(x_1..n b) / P(x_1..n)                              (2)

computed for all 256 bytes (and the end of text, when the vocabulary has an end-of-text token)
from the next-token distributions at the split points i = n - (longest token) .. n. Going
from x_1..n to x_1..n+1 keeps every split point and adds one, n + 1, whose next-token
distribution is one model call: byte-level sampling costs about one model call per byte
(`advance`), and the split points of a whole prompt are evaluated in one batched call (`prefix`).

Validity: t_1..t_{k-1} + [v] is valid when the tokenizer encodes its bytes back to it, checked on
a local context that the tokenizer names (`validity_context`): the last token for BPE, whose
valid sequences are those whose adjacent pairs are valid (Berglund & van der Merwe, 2023,
"Formalizing BPE Tokenization"), and the last tokens spelling at least the longest token for
maximum-prefix encoding (exact for both; with a pre-tokenizer, such as GPT-2's, a local
approximation). The checks of one context are cached.
Validity only removes mass the model should not have: with `check_validity=False` (the
authors' fast mode) every cover counts. With an exact token-level model the lemma reproduces the
byte distribution exactly; the maximum-prefix correction of paper 1 is this computation under
maximum-prefix encoding (`flowjax.data.MaxPrefixTokenizer`).

Uses (paper 2): ensembles of models with different vocabularies average their next-byte
distributions (`ensemble_next_byte_log_probs`); prompts that end inside a token (fill-in-the-
middle) are conditioned on exactly, against the plain prompt (`naive_next_byte_log_probs`) and
token healing (`token_healing_next_byte_log_probs`, which backs off the last token and requires
the next one to start with its bytes).

The model is any function over token sequences (`TokenModel`); `logits_token_model` wraps a
causal network `apply(tokens (B, L)) -> logits (B, L, V)`, e.g. `TextTransformer(causal=True)`
or `GPT2` (one padded batch over the split points, each read in full), and
`cached_token_model` its key/value-cache decoding (a new split point is one decoding step from
the split it extends). The cover bookkeeping runs on the host in float64; the network calls run
on the accelerator.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp as _logsumexp

END = 256
"""Index of the end of text in a next-byte distribution (257,): bytes are 0-255."""

TokenModel = Callable[[Sequence[Sequence[int]], int], tuple[np.ndarray, np.ndarray]]
"""(sequences, start) -> (scores (N,), next_log_probs (N, V)): for each token sequence s,
sum_{k >= start} log P(s_k | s_<k) and log P(. | s); one call is one (batched) network call."""


class Split(NamedTuple):
    """A split point i of the byte prefix: its encoding t_1..t_{k-1} of x_1..i, log P(t_1..t_{k-1})
    and log P(t_k = . | t_1..t_{k-1}) (V,) with invalid continuations at -inf."""

    start: int
    tokens: tuple[int, ...]
    log_prob: float
    next_log_probs: np.ndarray


class CoverState(NamedTuple):
    """The byte prefix x_1..n, its split points (those that can still be covered) and the count of
    model calls made so far."""

    data: bytes
    splits: tuple[Split, ...]
    calls: int


@dataclasses.dataclass(frozen=True, eq=False)
class ByteLevelModel:
    """A token-level model and its byte-level tokenizer, seen as a model over bytes.

    Args:
      model: `TokenModel` over the tokenizer's ids.
      tokenizer: a byte-level tokenizer (`flowjax.data.ByteLevelTokenizer`: `token_bytes`,
        `encode_bytes`, `encode_bytes_batch`, `eos_id`).
      context: token ids read before the bytes (a BOS id, which may lie outside the tokenizer's
        vocabulary; fill-in-the-middle sentinels and the encoded suffix); the probabilities are
        conditional on it.
      check_validity: restrict the covers to valid encodings (see the module docstring).
    """

    model: TokenModel
    tokenizer: Any
    context: tuple[int, ...] = ()
    check_validity: bool = True

    def __post_init__(self):
        try:  # a ValueError (an HFTokenizer that is not byte-level) goes to the caller as it is
            token_bytes = tuple(self.tokenizer.token_bytes)
        except AttributeError as error:
            raise ValueError(
                f"{type(self.tokenizer).__name__} is not a byte-level tokenizer (it has no "
                "token_bytes / encode_bytes): byte probabilities need the bytes of every token. "
                "Use flowjax.data.ByteTokenizer, MaxPrefixTokenizer or a byte-level BPE "
                "HFTokenizer."
            ) from error
        spelled = [i for i, b in enumerate(token_bytes) if b]
        if not spelled:
            raise ValueError("The tokenizer has no token that spells bytes.")
        object.__setattr__(self, "context", tuple(int(i) for i in self.context))
        order = sorted(spelled, key=lambda i: token_bytes[i])
        first = np.full(len(token_bytes), -1, np.int64)
        first[spelled] = [token_bytes[i][0] for i in spelled]
        eos = getattr(self.tokenizer, "eos_id", None)
        has_end = eos is not None and 0 <= eos < len(token_bytes) and token_bytes[eos] is None
        extra = dict(
            token_bytes=token_bytes,
            vocab_size=len(token_bytes),
            longest=max(len(token_bytes[i]) for i in spelled),
            first_byte=first,
            lengths=np.asarray([len(b or b"") for b in token_bytes], np.int64),
            order=np.asarray(order, np.int64),
            sorted_bytes=[token_bytes[i] for i in order],
            end_id=eos if has_end else None,
            validity_context=getattr(self.tokenizer, "validity_context", "longest"),
            validity_cache={},
        )
        for name, value in extra.items():
            object.__setattr__(self, name, value)
        if any(i < 0 for i in self.context):
            raise ValueError(f"context ids must be >= 0, got {self.context}.")

    # Tokens ----------------------------------------------------------------------------------

    def tokens_starting_with(self, prefix: bytes) -> np.ndarray:
        """Ids of the tokens whose bytes start with `prefix` (all spelled tokens for b"");
        they are contiguous in byte order."""
        lo = bisect.bisect_left(self.sorted_bytes, prefix)
        bound = _successor(prefix)
        hi = len(self.sorted_bytes) if bound is None else bisect.bisect_left(self.sorted_bytes, bound)
        return self.order[lo:hi]

    def encode(self, data: bytes) -> tuple[int, ...]:
        """The tokenizer's encoding of `data`, which must spell `data` back."""
        ids = tuple(int(i) for i in self.tokenizer.encode_bytes(bytes(data)))
        spelled = b"".join(self.token_bytes[i] or b"" for i in ids)
        if spelled != bytes(data):
            raise ValueError(
                f"The tokenizer encodes {bytes(data)[:40]!r} into ids that spell "
                f"{spelled[:40]!r}: it is not byte-complete on these bytes."
            )
        return ids

    def _valid_continuations(self, tokens: tuple[int, ...]) -> np.ndarray:
        """(V,) bool: which next tokens v keep tokens + [v] a valid encoding, checked on the
        tokenizer's `validity_context`: "pair", the last token only (BPE: a sequence is valid when
        each adjacent pair is, Berglund & van der Merwe, 2023), or "longest", the last tokens
        spelling at least the longest token's length (maximum-prefix encoding). Special ids other
        than the end stay valid."""
        keep, length = 0, 0
        wanted = 1 if self.validity_context == "pair" else self.longest
        while keep < len(tokens) and length < wanted:
            keep += 1
            length += len(self.token_bytes[tokens[-keep]] or b"")
        tail = tokens[len(tokens) - keep :]
        cached = self.validity_cache.get(tail)
        if cached is not None:
            return cached
        context = b"".join(self.token_bytes[i] or b"" for i in tail)
        encodings = self.tokenizer.encode_bytes_batch(
            [context + self.token_bytes[v] for v in self.order]
        )
        valid = np.ones(self.vocab_size, bool)
        valid[self.order] = [tuple(e) == (*tail, int(v)) for e, v in zip(encodings, self.order)]
        if len(self.validity_cache) > 4096:
            self.validity_cache.clear()
        self.validity_cache[tail] = valid
        return valid

    # Split points ----------------------------------------------------------------------------

    def _evaluate(self, data: bytes, starts: Sequence[int]) -> list[Split]:
        """The split points `starts` of `data`, with one model call batched over them."""
        encodings = [self.encode(data[:i]) for i in starts]
        scores, next_log_probs = self.model(
            [self.context + e for e in encodings], len(self.context)
        )
        scores = np.asarray(scores, np.float64).reshape(len(encodings))
        next_log_probs = np.asarray(next_log_probs, np.float64).reshape(len(encodings), -1)
        if next_log_probs.shape[1] != self.vocab_size:
            raise ValueError(
                f"The model gives {next_log_probs.shape[1]} next-token log-probabilities but the "
                f"tokenizer has {self.vocab_size} ids: they must share one vocabulary."
            )
        splits = []
        for i, tokens, score, logp in zip(starts, encodings, scores, next_log_probs):
            if self.check_validity:
                logp = np.where(self._valid_continuations(tokens), logp, -np.inf)
            splits.append(Split(int(i), tokens, float(score), logp))
        return splits

    def _reachable(self, data: bytes, start: int) -> bool:
        """Whether a token starting at byte `start` can reach the end of `data` (a cover of it,
        for the lemma) or go past it (for the next byte)."""
        return len(data) - start <= self.longest and (
            start == len(data) or len(self.tokens_starting_with(data[start:])) > 0
        )

    def prefix(self, data: bytes | str) -> CoverState:
        """The state of the byte prefix `data`: its split points, in one batched model call."""
        data = _as_bytes(data)
        self.encode(data)  # refuses bytes no token covers, before any model call
        starts = [i for i in range(max(0, len(data) - self.longest), len(data) + 1)
                  if self._reachable(data, i)]
        return CoverState(data, tuple(self._evaluate(data, starts)), 1)

    def advance(self, state: CoverState, byte: int) -> CoverState:
        """The state of x_1..n b from that of x_1..n: one model call (the new split point n + 1)."""
        if not (isinstance(byte, (int, np.integer)) and 0 <= byte < 256):
            raise ValueError(f"byte must be an int in [0, 256), got {byte!r}.")
        data = state.data + bytes([int(byte)])
        kept = tuple(s for s in state.splits if self._reachable(data, s.start))
        new = self._evaluate(data, [len(data)])
        return CoverState(data, kept + tuple(new), state.calls + 1)

    # Probabilities ---------------------------------------------------------------------------

    def prefix_log_prob(self, state: CoverState) -> float:
        """log P(x_1..n), the lemma (1): the sum over covers (0 for the empty prefix)."""
        data = state.data
        if not data:
            return 0.0
        terms = []
        for split in state.splits:
            if split.start < len(data):
                ids = self.tokens_starting_with(data[split.start :])
                terms.append(split.log_prob + _logsumexp(split.next_log_probs[ids]))
        return float(_logsumexp(np.asarray(terms))) if terms else -np.inf

    def joint_log_probs(self, state: CoverState) -> np.ndarray:
        """log P(x_1..n b) for b = 0..255 and log P(x_1..n, end) (257,), unnormalised: each
        split's tokens that start with the bytes after it and go past byte n, by their next byte."""
        data, out = state.data, np.full(257, -np.inf)
        for split in state.splits:
            offset = len(data) - split.start
            if offset == 0:  # the split at byte n: every next token, by its first byte, and the end
                out = np.logaddexp(out, self.by_first_byte(split.next_log_probs, split.log_prob))
                continue
            ids = self.tokens_starting_with(data[split.start :])
            ids = ids[self.lengths[ids] > offset]
            nxt = np.fromiter((self.token_bytes[i][offset] for i in ids), np.int64, len(ids))
            np.logaddexp.at(out, nxt, split.log_prob + split.next_log_probs[ids])
        return out

    def by_first_byte(self, log_probs: np.ndarray, base: float = 0.0) -> np.ndarray:
        """(257,) base + log of next-token mass `log_probs` (V,) grouped by each token's first
        byte, and base + the end id's."""
        out = np.full(257, -np.inf)
        np.logaddexp.at(out, self.first_byte[self.order], base + log_probs[self.order])
        if self.end_id is not None:
            out[END] = base + log_probs[self.end_id]
        return out

    def next_byte_log_probs(self, state: CoverState) -> np.ndarray:
        """log P(x_{n+1} = b | x_1..n) for b = 0..255 and the end of text (257,), equation (2)
        (normalised over the 257 outcomes)."""
        joint = self.joint_log_probs(state)
        total = _logsumexp(joint)
        if not np.isfinite(total):
            raise ValueError(
                f"The model gives the bytes {state.data[-40:]!r} probability 0: no valid cover."
            )
        return joint - total

    def log_prob(self, data: bytes | str) -> float:
        """log P(x_1..n) of a whole byte string by the lemma (one batched model call)."""
        return self.prefix_log_prob(self.prefix(data))

    def byte_log_likelihoods(self, data: bytes | str, prompt: bytes | str = b"") -> np.ndarray:
        """log P(x_j | prompt, x_<j) of each byte of `data` (N,): one model call per byte."""
        data = _as_bytes(data)
        state = self.prefix(prompt)
        out = np.empty(len(data))
        for j, byte in enumerate(data):
            out[j] = self.next_byte_log_probs(state)[byte]
            state = self.advance(state, byte)
        return out


def _successor(prefix: bytes) -> bytes | None:
    """The smallest byte string above every string that starts with `prefix` (None: no bound,
    for b"" and prefixes of 0xff bytes only)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise ValueError(f"Expected bytes or str, got {type(data).__name__}.")


def _draw(uniform: float, log_probs: np.ndarray, temperature: float) -> int:
    """The outcome whose cumulative probability first exceeds `uniform` (inverse CDF)."""
    scaled = np.where(np.isfinite(log_probs), log_probs / temperature, -np.inf)
    cdf = np.cumsum(np.exp(scaled - _logsumexp(scaled)))
    return int(min(np.searchsorted(cdf, uniform * cdf[-1], side="right"), len(cdf) - 1))


def sample_bytes(
    key: jax.Array,
    models: ByteLevelModel | Sequence[ByteLevelModel],
    prompt: bytes | str,
    num_bytes: int,
    *,
    weights: Sequence[float] | None = None,
    temperature: float = 1.0,
    stop_at_end: bool = True,
) -> tuple[bytes, list[CoverState]]:
    """Up to `num_bytes` bytes drawn after `prompt`, one at a time from the exact next-byte
    distribution (of one model, or of an ensemble's average); stops early at the end of text
    (`stop_at_end=False`: the end is never drawn, exactly `num_bytes` bytes).

    Each model keeps its covers incrementally: one batched call for the prompt, then one call per
    byte. Returns the bytes and each model's final state (`state.calls` counts its calls).
    """
    members = [models] if isinstance(models, ByteLevelModel) else list(models)
    if not (isinstance(num_bytes, int) and num_bytes >= 1):
        raise ValueError(f"num_bytes must be an int >= 1, got {num_bytes!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    states = [m.prefix(prompt) for m in members]
    # The draws' uniforms: a NumPy stream seeded by the key's bits (no compile per length).
    uniforms = np.random.default_rng(np.asarray(jax.random.key_data(key))).random(num_bytes)
    out = bytearray()
    for step in range(num_bytes):
        log_probs = ensemble_next_byte_log_probs(members, states, weights)
        if not stop_at_end:
            log_probs = np.concatenate([log_probs[:END], [-np.inf]])
        byte = _draw(uniforms[step], log_probs, temperature)
        if byte == END:
            break
        out.append(byte)
        states = [m.advance(s, byte) for m, s in zip(members, states)]
    return bytes(out), states


def ensemble_next_byte_log_probs(
    models: Sequence[ByteLevelModel],
    states: Sequence[CoverState],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """log of sum_m w_m P_m(x_{n+1} | x_1..n) (257,): models with different vocabularies agree on
    bytes, so their next-byte distributions can be averaged (paper 2, section 5). Weights default
    to uniform; they must be positive and are normalised."""
    if len(models) != len(states) or not models:
        raise ValueError("Give one state per model (at least one model).")
    w = np.full(len(models), 1.0 / len(models)) if weights is None else np.asarray(weights, float)
    if w.shape != (len(models),) or np.any(w <= 0):
        raise ValueError(f"weights must be {len(models)} positive numbers, got {weights!r}.")
    w = w / w.sum()
    stacked = np.stack([m.next_byte_log_probs(s) for m, s in zip(models, states)])
    return _logsumexp(stacked + np.log(w)[:, None], axis=0)


# Baselines ------------------------------------------------------------------------------------


def naive_next_byte_log_probs(lm: ByteLevelModel, prompt: bytes | str) -> np.ndarray:
    """The next-byte distribution of plain prompting (257,): the prompt is tokenized and the
    next token's first byte read off log P(. | encode(prompt)) (biased when the prompt's last
    token could be extended)."""
    tokens = lm.encode(_as_bytes(prompt))
    _, logp = lm.model([lm.context + tokens], len(lm.context))
    out = lm.by_first_byte(np.asarray(logp, np.float64)[0])
    return out - _logsumexp(out)


def token_healing_next_byte_log_probs(lm: ByteLevelModel, prompt: bytes | str) -> np.ndarray:
    """Token healing (e.g. Microsoft's guidance library): the prompt's last token is backed off
    and the next token must start with its bytes r. The next byte is that token's byte after r
    (or, for the token r itself, the first byte of the token after it). (257,)"""
    data = _as_bytes(prompt)
    tokens = lm.encode(data)
    if not tokens:
        return naive_next_byte_log_probs(lm, data)
    head, last = tokens[:-1], lm.token_bytes[tokens[-1]]
    _, logp = lm.model([lm.context + head, lm.context + tokens], len(lm.context))
    logp = np.asarray(logp, np.float64)
    ids = lm.tokens_starting_with(last)
    out = np.full(257, -np.inf)
    for v in ids:
        piece = lm.token_bytes[v]
        if len(piece) > len(last):
            out[piece[len(last)]] = np.logaddexp(out[piece[len(last)]], logp[0, v])
    exact = tokens[-1]
    out = np.logaddexp(out, lm.by_first_byte(logp[1], base=logp[0, exact]))
    return out - _logsumexp(out)


# Known answers ---------------------------------------------------------------------------------


def exact_token_model(
    texts: Sequence[bytes], probs: Sequence[float], tokenizer: Any
) -> TokenModel:
    """The exact token-level model of a distribution over byte strings, by enumeration: each text
    is encoded (then the end-of-text id, when the tokenizer has one) and
    P(t_1..t_k) = sum of the probabilities of the texts whose encoding starts with t_1..t_k.
    The scores and next-token log-probabilities it returns are those of this distribution (a
    prefix of probability 0 gets a uniform next token). Float64; for checks on small problems."""
    probs = np.asarray(probs, np.float64)
    if len(texts) != len(probs) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
        raise ValueError("Give one probability per text; they must be >= 0 and sum to 1.")
    vocab = len(tokenizer.token_bytes)
    eos = getattr(tokenizer, "eos_id", None)
    mass: dict[tuple[int, ...], float] = {}
    for text, p in zip(texts, probs):
        ids = tuple(int(i) for i in tokenizer.encode_bytes(bytes(text)))
        ids = ids + ((eos,) if eos is not None else ())
        for k in range(len(ids) + 1):
            mass[ids[:k]] = mass.get(ids[:k], 0.0) + p

    def log_mass(tokens: tuple[int, ...]) -> float:
        value = mass.get(tokens, 0.0)
        return float(np.log(value)) if value > 0 else -np.inf

    def model(sequences: Sequence[Sequence[int]], start: int) -> tuple[np.ndarray, np.ndarray]:
        scores, nexts = [], []
        for s in sequences:
            s = tuple(int(i) for i in s)
            base = log_mass(s)
            scores.append(base - log_mass(s[:start]))
            if np.isfinite(base):
                nexts.append([log_mass(s + (v,)) - base for v in range(vocab)])
            else:
                nexts.append(np.full(vocab, -np.log(vocab)))
        return np.asarray(scores), np.asarray(nexts, np.float64)

    return model


# A causal network as a TokenModel -------------------------------------------------------------


def _bucket(n: int, smallest: int) -> int:
    return max(smallest, 1 << (max(n, 1) - 1).bit_length())


def logits_token_model(
    apply: Callable[[jax.Array], jax.Array], *, max_length: int, pad_id: int = 0
) -> TokenModel:
    """A `TokenModel` from a causal network `apply(tokens (B, L)) -> logits (B, L, V)`.

    Sequences are right-padded (a causal network's logits at a position ignore later ones) to a
    power-of-two batch and length (at least 8 and 16), so that few shapes compile; `apply` is
    jitted here. A sequence longer than `max_length` is refused.
    """
    forward = jax.jit(lambda tokens: jax.nn.log_softmax(apply(tokens).astype(jnp.float32), -1))

    def model(sequences: Sequence[Sequence[int]], start: int) -> tuple[np.ndarray, np.ndarray]:
        lengths = [len(s) for s in sequences]
        if start < 1:
            raise ValueError(
                "A network needs at least one context token before the bytes (e.g. its BOS id): "
                "set ByteLevelModel(context=(bos_id,))."
            )
        if max(lengths) > max_length:
            raise ValueError(
                f"A sequence of {max(lengths)} tokens exceeds the model's {max_length}."
            )
        rows, width = _bucket(len(sequences), 8), min(_bucket(max(lengths), 16), max_length)
        tokens = np.full((rows, width), pad_id, np.int32)
        for r, s in enumerate(sequences):
            tokens[r, : len(s)] = s
        logp = np.asarray(forward(jnp.asarray(tokens)), np.float64)
        scores = np.array([  # log P(s_k | s_<k) is read at position k - 1
            logp[r, np.arange(start - 1, n - 1), np.asarray(s[start:], np.int64)].sum()
            for r, (s, n) in enumerate(zip(sequences, lengths))
        ])
        last = logp[np.arange(len(sequences)), np.asarray(lengths) - 1]
        return scores, last

    return model


def cached_token_model(
    decode: Callable[[jax.Array, Any], tuple[jax.Array, Any]],
    init_cache: Callable[[int, int], Any],
    *,
    max_length: int,
    vocab_size: int | None = None,
    capacity: int = 64,
) -> TokenModel:
    """A `TokenModel` over a network's key/value cache: a sequence one token longer than one
    seen before costs one decoding step from that sequence's cache, which is what byte-level
    sampling asks for (each new split point extends an earlier one by its last token); any
    other sequence is read in one pass (prefill). Sequences are processed one at a time.

    Args:
      decode: (tokens (1, n), cache) -> (logits (1, n, V'), cache), e.g. a causal
        `TextTransformer`'s or `GPT2`'s `decode`; jitted here.
      init_cache: (batch, max_length) -> an empty cache.
      max_length: the cache's length; a longer sequence is refused.
      vocab_size: keep the first `vocab_size` logits (a network whose input vocabulary has an
        extra BOS id predicts only the data ids).
      capacity: sequences whose cache and next-token log-probabilities are kept (least
        recently used dropped first). Above the longest token's length in bytes, every new
        split point finds the split it extends; each kept cache holds max_length positions.
    """
    from collections import OrderedDict

    @jax.jit
    def step(tokens, cache):  # the logits of every position (1, n, V), sliced to the data ids
        logits, cache = decode(tokens, cache)
        return (logits[..., :vocab_size] if vocab_size else logits), cache

    memo: OrderedDict[tuple[int, ...], tuple[Any, float, np.ndarray]] = OrderedDict()

    def log_softmax(logits: jax.Array) -> np.ndarray:
        logits = np.asarray(logits, np.float64)
        return logits - _logsumexp(logits, axis=-1)[..., None]

    def read(s: tuple[int, ...]) -> tuple[Any, float, np.ndarray]:
        if s in memo:
            memo.move_to_end(s)
            return memo[s]
        parent = memo.get(s[:-1])
        if parent is not None:
            cache, score, logp = parent
            logits, cache = step(np.asarray([[s[-1]]], np.int32), cache)
            entry = (cache, score + float(logp[s[-1]]), log_softmax(logits)[0, -1])
        else:
            logits, cache = step(np.asarray([s], np.int32), init_cache(1, max_length))
            logp = log_softmax(logits[0])
            score = float(logp[np.arange(len(s) - 1), np.asarray(s[1:], np.int64)].sum())
            entry = (cache, score, logp[-1])  # score from position 1: the first is the context
        memo[s] = entry
        if len(memo) > capacity:
            memo.popitem(last=False)
        return entry

    def model(sequences: Sequence[Sequence[int]], start: int) -> tuple[np.ndarray, np.ndarray]:
        if start < 1:
            raise ValueError(
                "A network needs at least one context token before the bytes (e.g. its BOS id): "
                "set ByteLevelModel(context=(bos_id,))."
            )
        scores, nexts = [], []
        for s in sequences:
            s = tuple(int(i) for i in s)
            if len(s) > max_length:
                raise ValueError(f"A sequence of {len(s)} tokens exceeds the cache's {max_length}.")
            _, score, logp = read(s)
            context_score = read(s[:start])[1] if start > 1 else 0.0
            scores.append(score - context_score)
            nexts.append(logp)
        return np.asarray(scores), np.stack(nexts)

    return model


__all__ = [
    "END",
    "ByteLevelModel",
    "CoverState",
    "cached_token_model",
    "Split",
    "TokenModel",
    "ensemble_next_byte_log_probs",
    "exact_token_model",
    "logits_token_model",
    "naive_next_byte_log_probs",
    "sample_bytes",
    "token_healing_next_byte_log_probs",
]
