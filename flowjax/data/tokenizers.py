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


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255 and an end-of-text id 256 (no BOS: `bos_id` is None)."""

    vocab_size = 257
    bos_id = None
    eos_id = 256
    sep_id = None
    fingerprint = "bytes-utf8-eos256"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) for t in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        data = ids[(ids >= 0) & (ids < 256)].astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")


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


__all__ = ["BYTES", "ByteTokenizer", "HFTokenizer", "Tokenizer", "load_tokenizer"]
