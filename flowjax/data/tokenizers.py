"""Tokenizers for the text sources: bytes built in, Hugging Face `tokenizer.json` files.

`Tokenizer` is the small protocol the text pipeline (`flowjax.data.text`) needs: the vocabulary
size, `encode(str) -> list[int]` (no special tokens added), `encode_batch`, `decode(ids) -> str`
(special ids dropped), the special ids a preparation inserts (`bos_id`, `eos_id`, `sep_id`, None
where the vocabulary has none) and a `fingerprint` identifying the vocabulary in cache keys.

- `ByteTokenizer`: the 256 byte values of UTF-8 text plus an end-of-text id 256 (vocabulary
  257); decoding drops the end-of-text id and replaces invalid UTF-8 with U+FFFD.
- `HFTokenizer`: a `tokenizer.json` read with the `tokenizers` library, e.g. GPT-2's (the
  OpenWebText vocabulary of 50,257 ids; `<|endoftext|>` = 50256 is both BOS and EOS) or
  bert-base-uncased's (LM1B; 30,522 ids; [CLS] = 101 opens and [SEP] = 102 closes a sentence).
  The special tokens are read from `special_tokens_map.json` next to the file when there is one
  (as `save_pretrained` writes it), else recognised by name; as in MDLM (Sahoo et al., 2024),
  a vocabulary without BOS / EOS tokens uses [CLS] / [SEP].

Byte-level tokenizers (`ByteLevelTokenizer`) also give each token's bytes (`token_bytes`, None for
special tokens) and encode any byte string (`encode_bytes`): what exact byte-level probabilities
need (`flowjax.solvers.byte_level`). `ByteTokenizer` is one; `HFTokenizer` is one when its file is
a byte-level BPE (GPT-2's, or one trained with `tokenizers.pre_tokenizers.ByteLevel`), and refuses
otherwise (WordPiece's "##" pieces are not byte strings); `MaxPrefixTokenizer` is the greedy
longest-match ("maximum prefix") encoding of Phan et al. (2024), over any list of byte strings.

`load_tokenizer(spec)`: "bytes", or the path of a `tokenizer.json` or of a directory holding one.
Nothing is downloaded: on a machine with internet,

    python -c "from transformers import AutoTokenizer; \\
        AutoTokenizer.from_pretrained('gpt2').save_pretrained('/path/gpt2')"

(or 'bert-base-uncased') writes the directory to copy here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import cached_property
from typing import Protocol

import numpy as np

BYTES = "bytes"
"""The `load_tokenizer` spec of the built-in byte tokenizer."""

# Special tokens recognised by name when no special_tokens_map.json says otherwise.
_NAMED_SPECIALS = {
    "bos_token": ("<|endoftext|>", "<s>", "[BOS]"),
    "eos_token": ("<|endoftext|>", "</s>", "[EOS]"),
    "cls_token": ("[CLS]",),
    "sep_token": ("[SEP]",),
}


class Tokenizer(Protocol):
    """What a text source needs of a tokenizer (ids in [0, vocab_size))."""

    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    sep_id: int | None
    fingerprint: str

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, without special tokens."""
        ...

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """`encode` of each text, as int32 arrays (n_i,)."""
        ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ids (L,); special ids and ids outside the vocabulary are dropped."""
        ...


class ByteLevelTokenizer(Tokenizer, Protocol):
    """A tokenizer whose tokens are byte strings: what `flowjax.solvers.byte_level` needs.

    `validity_context` is the context on which appending a token to an encoding is checked:
    "pair" (the last token: BPE) or "longest" (the last tokens spelling at least the longest
    token: maximum-prefix encoding)."""

    validity_context: str

    @property
    def token_bytes(self) -> tuple[bytes | None, ...]:
        """The bytes of each id (V,); None for special ids (BOS, EOS), which spell no bytes."""
        ...

    def encode_bytes(self, data: bytes) -> list[int]:
        """The ids of a byte string (which need not be valid UTF-8), without special tokens."""
        ...

    def encode_bytes_batch(self, data: Sequence[bytes]) -> list[list[int]]:
        """`encode_bytes` of each byte string."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255 and an end-of-text id 256 (no BOS: `bos_id` is None)."""

    vocab_size = 257
    bos_id = None
    eos_id = 256
    sep_id = None
    fingerprint = "bytes-utf8-eos256"
    token_bytes = tuple(bytes([b]) for b in range(256)) + (None,)
    validity_context = "pair"  # every byte sequence is valid

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_bytes(self, data: bytes) -> list[int]:
        return list(bytes(data))

    def encode_bytes_batch(self, data: Sequence[bytes]) -> list[list[int]]:
        return [list(bytes(d)) for d in data]

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) for t in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        data = ids[(ids >= 0) & (ids < 256)].astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")


def byte_level_alphabet() -> dict[str, int]:
    """The printable character standing for each byte in byte-level BPE vocabularies (GPT-2;
    `tokenizers.pre_tokenizers.ByteLevel`): bytes 33-126, 161-172 and 174-255 stand for
    themselves, the other 68 for U+0100, U+0101, ... in byte order. Returns {character: byte}."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in set(printable)]
    alphabet = {chr(b): b for b in printable}
    alphabet.update({chr(256 + k): b for k, b in enumerate(others)})
    return alphabet


def _is_byte_level(component: dict | None) -> bool:
    """Whether a tokenizer.json pre-tokenizer / decoder is (or holds) a ByteLevel one."""
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    parts = component.get("pretokenizers") or component.get("decoders") or ()
    return any(_is_byte_level(part) for part in parts)


def _split_utf8(data: bytes) -> list[tuple[bool, bytes]]:
    """`data` as runs of valid UTF-8 (True, run) and single undecodable bytes (False, byte)."""
    runs, start = [], 0
    while start < len(data):
        try:
            data[start:].decode("utf-8")
            runs.append((True, data[start:]))
            break
        except UnicodeDecodeError as error:
            if error.start:
                runs.append((True, data[start : start + error.start]))
            runs.append((False, data[start + error.start : start + error.start + 1]))
            start += error.start + 1
    return runs


def _special_token_map(directory: str) -> dict[str, str]:
    """{"bos_token": "<s>", ...} from special_tokens_map.json in `directory` ({} if absent)."""
    path = os.path.join(directory, "special_tokens_map.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    out = {}
    for key, value in raw.items():
        content = value.get("content") if isinstance(value, dict) else value
        if isinstance(content, str):
            out[key] = content
    return out


class HFTokenizer:
    """A Hugging Face `tokenizer.json` (BPE, WordPiece, Unigram...) read with `tokenizers`.

    Encoding never adds special tokens and never truncates or pads (whatever the file sets);
    the vocabulary size counts the added tokens (GPT-2: 50,257).
    """

    validity_context = "pair"  # BPE (the byte-level methods refuse other models)

    def __init__(self, path: str):
        from tokenizers import Tokenizer as _Tokenizer

        self.path = os.path.abspath(path)
        with open(self.path, "rb") as f:
            contents = f.read()
        self._tokenizer = _Tokenizer.from_str(contents.decode("utf-8"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.vocab_size = int(self._tokenizer.get_vocab_size(with_added_tokens=True))
        named = _special_token_map(os.path.dirname(self.path))
        ids = {key: self._special_id(key, named) for key in _NAMED_SPECIALS}
        self.bos_id = ids["bos_token"] if ids["bos_token"] is not None else ids["cls_token"]
        self.eos_id = ids["eos_token"] if ids["eos_token"] is not None else ids["sep_token"]
        self.sep_id = ids["sep_token"]
        digest = hashlib.sha256(contents)
        digest.update(json.dumps(named, sort_keys=True).encode("utf-8"))
        self.fingerprint = "hf-" + digest.hexdigest()

    def _special_id(self, key: str, named: dict[str, str]) -> int | None:
        candidates = (named[key],) if key in named else _NAMED_SPECIALS[key]
        for token in candidates:
            token_id = self._tokenizer.token_to_id(token)
            if token_id is not None:
                return int(token_id)
        return None

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, np.int32) for e in encodings]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        ids = ids[(ids >= 0) & (ids < self.vocab_size)]
        return self._tokenizer.decode(ids.tolist(), skip_special_tokens=True)

    def _require_byte_level(self) -> None:
        spec = json.loads(self._tokenizer.to_str())
        model = (spec.get("model") or {}).get("type")
        if not (model == "BPE" and _is_byte_level(spec.get("pre_tokenizer"))
                and _is_byte_level(spec.get("decoder")) and not spec.get("normalizer")):
            raise ValueError(
                f"The tokenizer {self.path} is not byte-level (model {model}, pre-tokenizer "
                f"{(spec.get('pre_tokenizer') or {}).get('type')}, decoder "
                f"{(spec.get('decoder') or {}).get('type')}, normalizer "
                f"{(spec.get('normalizer') or {}).get('type')}): its tokens are not byte strings, "
                "so byte-level probabilities are not defined for it. Use a byte-level BPE "
                "(GPT-2's, or one trained with tokenizers.pre_tokenizers.ByteLevel and no "
                "normalizer)."
            )

    @cached_property
    def token_bytes(self) -> tuple[bytes | None, ...]:
        """The bytes of each id (byte-level BPE only; None for the added special tokens)."""
        self._require_byte_level()
        alphabet = byte_level_alphabet()
        special = {t.content for t in self._tokenizer.get_added_tokens_decoder().values()
                   if t.special}
        out: list[bytes | None] = [None] * self.vocab_size
        for token, token_id in self._tokenizer.get_vocab(with_added_tokens=True).items():
            if token in special:
                continue
            if any(ch not in alphabet for ch in token):
                raise ValueError(
                    f"Token {token!r} (id {token_id}) of {self.path} is not written in the "
                    "byte-level alphabet, so it is not a byte string."
                )
            out[token_id] = bytes(alphabet[ch] for ch in token)
        return tuple(out)

    @cached_property
    def _to_alphabet(self) -> dict[int, str]:
        """{byte: its character}; refuses a tokenizer that is not byte-level."""
        self._require_byte_level()
        return {b: ch for ch, b in byte_level_alphabet().items()}

    def encode_bytes(self, data: bytes) -> list[int]:
        """The ids of any byte string, as `encode` gives them for valid UTF-8: the pre-tokenizer
        splits each valid UTF-8 run, an undecodable byte is a piece of its own, and BPE merges
        each piece (byte-level BPE only)."""
        to_alphabet = self._to_alphabet
        pre, model = self._tokenizer.pre_tokenizer, self._tokenizer.model
        ids: list[int] = []
        for valid, run in _split_utf8(bytes(data)):
            if valid:
                pieces = [piece for piece, _ in pre.pre_tokenize_str(run.decode("utf-8"))]
            else:
                pieces = [to_alphabet[run[0]]]
            for piece in pieces:
                ids.extend(token.id for token in model.tokenize(piece))
        return ids

    def encode_bytes_batch(self, data: Sequence[bytes]) -> list[list[int]]:
        """`encode_bytes` of each byte string; the valid UTF-8 ones in one call of the Rust
        encoder (the same ids, faster)."""
        out: list[list[int] | None] = [None] * len(data)
        texts, where = [], []
        for i, d in enumerate(data):
            try:
                texts.append(bytes(d).decode("utf-8"))
                where.append(i)
            except UnicodeDecodeError:
                out[i] = self.encode_bytes(d)
        if texts:
            self._to_alphabet  # refuses a tokenizer that is not byte-level
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
            for i, encoding in zip(where, encodings):
                out[i] = list(encoding.ids)
        return out


class MaxPrefixTokenizer:
    """Maximum-prefix encoding (Phan et al., 2024, "Understanding and Mitigating Tokenization
    Bias in Language Models", section 3): from the left, always the longest token that the
    remaining bytes start with (WordPiece's rule, without "##"). Ids 0..n-1 are `tokens` (distinct
    byte strings) and id n the end of text (`eos_id`); there is no BOS.

    `encode_bytes` raises ValueError at a byte that no token starts with.
    """

    bos_id = None
    sep_id = None
    validity_context = "longest"

    def __init__(self, tokens: Sequence[bytes | str]):
        pieces = tuple(t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in tokens)
        if not pieces or any(not p for p in pieces) or len(set(pieces)) != len(pieces):
            raise ValueError(
                f"tokens must be distinct, non-empty byte strings, got {list(tokens)!r}."
            )
        self.token_bytes = (*pieces, None)
        self.vocab_size = len(pieces) + 1
        self.eos_id = len(pieces)
        self._ids = {p: i for i, p in enumerate(pieces)}
        self._longest = max(len(p) for p in pieces)
        self.fingerprint = "mpe-" + hashlib.sha256(b"\0".join(pieces)).hexdigest()

    def encode_bytes(self, data: bytes) -> list[int]:
        data, ids, start = bytes(data), [], 0
        while start < len(data):
            for length in range(min(self._longest, len(data) - start), 0, -1):
                token_id = self._ids.get(data[start : start + length])
                if token_id is not None:
                    ids.append(token_id)
                    start += length
                    break
            else:
                raise ValueError(
                    f"Byte {data[start:start + 1]!r} at position {start} starts no token of this "
                    "vocabulary: no token sequence spells these bytes."
                )
        return ids

    def encode_bytes_batch(self, data: Sequence[bytes]) -> list[list[int]]:
        return [self.encode_bytes(d) for d in data]

    def encode(self, text: str) -> list[int]:
        return self.encode_bytes(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(self.encode(t), np.int32) for t in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        data = b"".join(self.token_bytes[i] or b"" for i in ids if 0 <= i < self.vocab_size)
        return data.decode("utf-8", errors="replace")


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"Tokenizer file {path!r} does not exist (data.tokenizer is 'bytes' or the path of a "
        "tokenizer.json or of a directory holding one). Nothing can be downloaded here: on a "
        "machine with internet run\n"
        "  python -c \"from transformers import AutoTokenizer; "
        "AutoTokenizer.from_pretrained('gpt2').save_pretrained('/path/gpt2')\"\n"
        "(or 'bert-base-uncased' for LM1B), copy the directory here and set "
        "data.tokenizer=/path/gpt2."
    )


def tokenizer_file(spec: str) -> str | None:
    """The tokenizer.json a spec names (None for "bytes"); FileNotFoundError if absent."""
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise ValueError(f"data.tokenizer must be 'bytes' or a path, got {spec!r}.")
    spec = os.fspath(spec)
    if spec == BYTES:
        return None
    path = os.path.join(spec, "tokenizer.json") if os.path.isdir(spec) else spec
    if not os.path.isfile(path):
        raise _missing(path)
    return path


def load_tokenizer(spec: str) -> Tokenizer:
    """`ByteTokenizer` for "bytes", else `HFTokenizer` of the tokenizer.json at (or in) `spec`.

    Raises:
      FileNotFoundError: naming the missing file and how to obtain it.
    """
    path = tokenizer_file(spec)
    return ByteTokenizer() if path is None else HFTokenizer(path)


__all__ = [
    "BYTES",
    "ByteLevelTokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "MaxPrefixTokenizer",
    "Tokenizer",
    "byte_level_alphabet",
    "load_tokenizer",
]
