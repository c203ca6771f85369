"""Tokenized text sources: local .txt files, LM1B / OpenWebText through TFDS, Python's docs.

Each source turns a corpus of documents into rows of `seq_len` token ids, the records that the
grain pipeline (`flowjax.data.pipeline`) reads with its `EpochIndexSampler`, so shuffling,
epochs, exact resume and the split over processes are those of every record source. A batch is
{"x": int32 (local, seq_len)}.

Sources (their config keys are listed in `flowjax.data.pipeline`):

- "text_files": the .txt files of a directory (recursively), a glob or a list of them, one
  document per file, in sorted path order, read as UTF-8 (invalid bytes replaced).
- "python_docs": the English help topics shipped with the interpreter (`pydoc_data.topics`,
  about 80 documents and 0.5 MB on Python 3.11), one document per topic in sorted key order; an
  offline corpus for short CPU runs.
- "tfds_text": "lm1b" or "openwebtext" (their "text" feature) read through
  `tfds.data_source` from a locally prepared TFDS directory, in TFDS's stored order.

Preparation. The documents become one token stream, each followed by the tokenizer's EOS id
(nothing where the tokenizer has none):

    stream = encode(d_0) + [eos] + encode(d_1) + [eos] + ...

- text_files, python_docs: row r = stream[r L : (r + 1) L].
- tfds_text, the two preparations of MDLM (Sahoo et al., 2024, section 4.1 and its code):
  row r = [bos] + stream[r (L - 2) : (r + 1) (L - 2)] + [eos]. LM1B (bert-base-uncased,
  L = 128): bos = [CLS], eos = [SEP], so rows read "[CLS] s1 [SEP] s2 [SEP] s3-part [SEP]";
  each sentence first goes through `lm1b_detokenize` (MDLM's rules joining LM1B's split
  punctuation). OpenWebText (GPT-2, L = 1,024): bos = eos = <|endoftext|>; TFDS has only a
  "train" split, of which the last `OWT_VALIDATION_DOCUMENTS` = 100,000 documents form the
  held-out split "validation" and the rest "train". A tokenizer without BOS uses its EOS.
  Two differences from MDLM's code: the whole split is one stream (MDLM concatenates per batch
  of 1,000 documents and drops each batch's remainder), and the documents come in TFDS's order
  (MDLM reads Hugging Face's), so OpenWebText's 100,000 held-out documents are other ones.

Empty documents are skipped and the incomplete last row is dropped, in every case.

Splits of text_files and python_docs: the end of each document, from the start of the line that
holds its character at 90% (`TEST_FRACTION` = 10%; that character itself in a one-line
document), is "test", the rest "train"; every document contributes to both, no text to both.

Cache. The stream is computed once and stored as a 1-D int32 .npy file in `cache_dir` (default:
<data_dir>/flowjax_text for tfds_text with a data_dir, else ~/.cache/flowjax/text), named by the
source and split and by a hash of the corpus identity (file paths, sizes and modification
times; the topics' text; the TFDS directory, version and number of documents), the split, the
tokenizer's file contents and special ids and the preparation. It is written to a temporary
file in the same directory, then moved into place with `os.replace`, so concurrent processes or
a crash never leave a partial cache under the final name. Rows are read from a memory map.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowjax.data import sources as _src
from flowjax.data.tokenizers import Tokenizer, load_tokenizer

TEXT_SOURCES = ("text_files", "tfds_text", "python_docs")
"""The `data.source` values of tokenized text."""

TFDS_TEXT_DATASETS = ("lm1b", "openwebtext")
"""The TFDS text datasets with a preparation (`data.name` of "tfds_text")."""

SPLITS = ("train", "test")
"""Splits of "text_files" and "python_docs"."""

OWT_SPLITS = ("train", "validation")
"""Splits of "openwebtext" (both cut from TFDS's "train")."""

TEST_FRACTION = 0.1
"""The share of each document's characters in the "test" split of text_files / python_docs."""

OWT_VALIDATION_DOCUMENTS = 100_000
"""OpenWebText's held-out documents: the last ones of TFDS's "train" split (MDLM)."""

DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "flowjax", "text")
"""Where token streams go when neither `data.cache_dir` nor a TFDS `data_dir` is set."""

_CACHE_FORMAT = 1  # bumped whenever the stream layout changes
_DOCUMENTS_PER_CHUNK = 1024
_TEXT_KEY = "text"

_log = logging.getLogger(__name__)

# MDLM's LM1B detokenizer: (pattern, replacement) applied in order.
_LM1B_RULES = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"http : / / ", "http://"),
        (r"https : / / ", "https://"),
        (r" '(\w+)", r"'\1"),
        (r" (\w+) \. ", r" \1. "),
        (r" (\w+) \.$", r" \1."),
        (r" \? ", "? "),
        (r" \?$", "?"),
        (r" ! ", "! "),
        (r" !$", "!"),
        (r" , ", ", "),
        (r" : ", ": "),
        (r" ; ", "; "),
        (r" / ", "/"),
        (r'" ([^"]+) "', r'"\1"'),
        (r"' ([^']+) '", r"'\1'"),
        (r"\( ([^()]+) \)", r"(\1)"),
        (r"\[ ([^\[\]]+) \]", r"[\1]"),
        (r"\$ ", "$"),
        (r"£ ", "£"),
    )
)


def lm1b_detokenize(text: str) -> str:
    """LM1B's space-separated punctuation joined back (MDLM's rules): "it 's" -> "it's"."""
    for pattern, replacement in _LM1B_RULES:
        text = pattern.sub(replacement, text)
    return text


def split_document(text: str, split: str) -> str:
    """The "train" or "test" part of a document: "test" starts at the line holding the
    character at 90% of the text (or at that character when no line break precedes it)."""
    cut = int(len(text) * (1.0 - TEST_FRACTION))
    line_start = text.rfind("\n", 0, cut) + 1
    if line_start > 0:
        cut = line_start
    return text[:cut] if split == "train" else text[cut:]


# --------------------------------------------------------------------------------------------
# Config checks (no file access).


def tfds_text_dataset(name: str) -> str:
    """The preparation ("lm1b" / "openwebtext") of a TFDS name such as "lm1b:1.1.0"."""
    base = str(name).split(":")[0].split("/")[0]
    if base not in TFDS_TEXT_DATASETS:
        raise ValueError(
            f"data.name={name!r} has no text preparation; source='tfds_text' reads one of "
            f"{TFDS_TEXT_DATASETS}."
        )
    return base


def check_spec(spec: dict[str, Any]) -> None:
    """Raises a ValueError for a bad seq_len, split, name, tokenizer or cache_dir."""
    source = spec["source"]
    least = 3 if source == "tfds_text" else 1  # a wrapped row holds BOS, EOS and a token
    seq_len = spec["seq_len"]
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < least:
        raise ValueError(
            f"data.seq_len must be an int >= {least} for source={source!r}, got {seq_len!r}."
        )
    if not isinstance(spec["tokenizer"], str) or not spec["tokenizer"]:
        raise ValueError(
            f"data.tokenizer must be 'bytes' or the path of a tokenizer.json (or of its "
            f"directory), got {spec['tokenizer']!r}."
        )
    if spec["cache_dir"] is not None and not isinstance(spec["cache_dir"], str):
        raise ValueError(f"data.cache_dir must be None or a path, got {spec['cache_dir']!r}.")
    if source == "tfds_text":
        if tfds_text_dataset(spec["name"]) == "openwebtext" and spec["split"] not in OWT_SPLITS:
            raise ValueError(
                f"data.split={spec['split']!r} is not an OpenWebText split; expected one of "
                f"{OWT_SPLITS} (the last {OWT_VALIDATION_DOCUMENTS:,} documents of TFDS's "
                "'train' form 'validation')."
            )
    elif spec["split"] not in SPLITS:
        raise ValueError(
            f"data.split={spec['split']!r} is not a split of source={source!r}; expected one "
            f"of {SPLITS}."
        )
    if source == "text_files":
        paths = spec["path"]
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, (list, tuple)) or not paths or not all(
            isinstance(p, str) for p in paths
        ):
            raise ValueError(
                "data.path must be a directory of .txt files, a glob or a list of them, got "
                f"{spec['path']!r}."
            )


# --------------------------------------------------------------------------------------------
# Corpora: the documents of a source, what identifies them, how they are prepared.


@dataclass(frozen=True)
class Corpus:
    """The documents of one split of a text source, and how they become rows.

    `chunks()` yields lists of documents (strings) in corpus order; `identity` is what the
    cache key hashes besides the tokenizer; `wrapped` selects MDLM's [bos] ... [eos] rows.
    """

    label: str
    identity: dict[str, Any]
    chunks: Callable[[], Iterator[list[str]]]
    cache_dir: str
    wrapped: bool = False
    detokenize: Callable[[str], str] | None = None


def resolve_text_files(path: str | Sequence[str]) -> list[str]:
    """The .txt files of directories (recursively), globs or files, sorted within each."""
    patterns = [path] if isinstance(path, str) else list(path)
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(glob.glob(os.path.join(pattern, "**", "*.txt"), recursive=True))
        elif glob.has_magic(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        else:
            found = [pattern] if os.path.isfile(pattern) else []
        if not found:
            raise ValueError(
                f"data.path {pattern!r} holds no .txt file (expected a directory of .txt files, "
                "a glob such as 'corpus/*.txt', a file, or a list of them)."
            )
        files.extend(os.path.abspath(f) for f in found)
    return files


def _in_chunks(
    items: Sequence[Any], read: Callable[[Sequence[Any]], list[str]]
) -> Callable[[], Iterator[list[str]]]:
    """`Corpus.chunks` reading `items` (paths, keys, indices) a chunk at a time."""

    def chunks() -> Iterator[list[str]]:
        for start in range(0, len(items), _DOCUMENTS_PER_CHUNK):
            yield read(items[start : start + _DOCUMENTS_PER_CHUNK])

    return chunks


def _text_files_corpus(spec: dict[str, Any]) -> Corpus:
    files = resolve_text_files(spec["path"])
    split = spec["split"]

    def read(paths: Sequence[str]) -> list[str]:
        out = []
        for p in paths:
            with open(p, encoding="utf-8", errors="replace") as f:
                out.append(split_document(f.read(), split))
        return out

    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    return Corpus(
        label=f"text_files-{split}",
        identity={"source": "text_files", "split": split, "files": stats},
        chunks=_in_chunks(files, read),
        cache_dir=spec["cache_dir"] or DEFAULT_CACHE_DIR,
    )


def python_docs_topics() -> dict[str, str]:
    """{topic: English help text} shipped with the interpreter (`pydoc_data.topics.topics`)."""
    from pydoc_data.topics import topics

    return dict(topics)


def _python_docs_corpus(spec: dict[str, Any]) -> Corpus:
    topics = python_docs_topics()
    keys = sorted(topics)
    digest = hashlib.sha256()
    for key in keys:
        digest.update(json.dumps([key, topics[key]]).encode("utf-8"))
    split = spec["split"]
    return Corpus(
        label=f"python_docs-{split}",
        identity={"source": "python_docs", "split": split, "topics": digest.hexdigest()},
        chunks=_in_chunks(keys, lambda ks: [split_document(topics[k], split) for k in ks]),
        cache_dir=spec["cache_dir"] or DEFAULT_CACHE_DIR,
    )


def _tfds_text_corpus(spec: dict[str, Any]) -> Corpus:
    import tensorflow_datasets as tfds

    name, split, data_dir = spec["name"], spec["split"], spec["data_dir"]
    dataset = tfds_text_dataset(name)
    builder = _src.tfds_builder(name, data_dir)
    tfds_split = "train" if dataset == "openwebtext" else split
    _src.check_tfds_split(builder, tfds_split)
    features = builder.info.features
    if _TEXT_KEY not in features:
        raise ValueError(
            f"TFDS dataset {name!r} has no {_TEXT_KEY!r} feature; its features are "
            f"{list(features.keys())}."
        )
    source = tfds.data_source(name, split=tfds_split, data_dir=data_dir, download=False)
    n = len(source)
    identity: dict[str, Any] = {
        "source": "tfds_text",
        "name": name,
        "split": split,
        "data_dir": os.path.abspath(str(builder.data_dir)),
        "version": str(builder.info.version),
        "documents": n,
    }
    indices = range(n)
    if dataset == "openwebtext":
        held_out = OWT_VALIDATION_DOCUMENTS
        if n <= held_out:
            raise ValueError(
                f"OpenWebText in {str(builder.data_dir)!r} has {n:,} documents; its last "
                f"{held_out:,} form the 'validation' split, which leaves none for 'train'."
            )
        indices = range(n - held_out, n) if split == "validation" else range(n - held_out)
        identity["validation_documents"] = held_out

    def read(batch: Sequence[int]) -> list[str]:
        examples = source.__getitems__(list(batch))
        return [bytes(e[_TEXT_KEY]).decode("utf-8", errors="replace") for e in examples]

    cache_dir = spec["cache_dir"]
    if cache_dir is None:
        cache_dir = os.path.join(data_dir, "flowjax_text") if data_dir else DEFAULT_CACHE_DIR
    return Corpus(
        label=f"{dataset}-{split}",
        identity=identity,
        chunks=_in_chunks(indices, read),
        cache_dir=cache_dir,
        wrapped=True,
        detokenize=lm1b_detokenize if dataset == "lm1b" else None,
    )


def corpus(spec: dict[str, Any]) -> Corpus:
    """The `Corpus` of a parsed text config (opens and checks its files or TFDS dataset)."""
    if spec["source"] == "text_files":
        return _text_files_corpus(spec)
    if spec["source"] == "python_docs":
        return _python_docs_corpus(spec)
    return _tfds_text_corpus(spec)


# --------------------------------------------------------------------------------------------
# The cached token stream.


def stream_key(corpus: Corpus, tokenizer: Tokenizer) -> str:
    """The hash naming a corpus's token stream under a tokenizer."""
    key = {
        "format": _CACHE_FORMAT,
        "corpus": corpus.identity,
        "tokenizer": tokenizer.fingerprint,
        "eos": tokenizer.eos_id,
        "detokenize": corpus.detokenize.__name__ if corpus.detokenize else None,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def _stream_chunks(corpus: Corpus, tokenizer: Tokenizer) -> Iterator[np.ndarray]:
    eos = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    documents = 0
    for texts in corpus.chunks():
        if corpus.detokenize is not None:
            texts = [corpus.detokenize(t) for t in texts]
        texts = [t for t in texts if t]
        documents += len(texts)
        pieces = []
        for ids in tokenizer.encode_batch(texts):
            pieces.extend((ids, np.asarray(eos, np.int32)))
        if pieces:
            yield np.concatenate(pieces).astype(np.int32)
    _log.info("Tokenized %d documents of %s.", documents, corpus.label)


def _npy_header(num_tokens: int) -> bytes:
    """The .npy (format 1.0) header of an int32 array (num_tokens,): 128 bytes for any size,
    as numpy pads the header to leave room for the shape to grow."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i4", "fortran_order": False, "shape": (num_tokens,)}
    )
    return header.getvalue()


def _write_npy_atomically(path: str, chunks: Iterator[np.ndarray]) -> None:
    """Writes the concatenated chunks as a 1-D int32 .npy at `path` (temp file + os.replace)."""
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            reserved = len(_npy_header(0))
            f.seek(reserved)  # the header, whose shape is known last, goes before the data
            n = 0
            for chunk in chunks:
                f.write(np.ascontiguousarray(chunk, dtype="<i4").tobytes())
                n += chunk.size
            header = _npy_header(n)
            if len(header) != reserved:
                raise RuntimeError(f"Unexpected .npy header size for {n} tokens.")
            f.seek(0)
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def token_stream(corpus: Corpus, tokenizer: Tokenizer) -> str:
    """The path of the corpus's cached int32 token stream (computed on first use)."""
    cache_dir = os.path.expanduser(corpus.cache_dir)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", corpus.label)
    path = os.path.join(cache_dir, f"{label}-{stream_key(corpus, tokenizer)}.npy")
    if os.path.isfile(path):
        return path
    try:
        os.makedirs(cache_dir, exist_ok=True)
        _log.info("Tokenizing %s into %s.", corpus.label, path)
        _write_npy_atomically(path, _stream_chunks(corpus, tokenizer))
    except OSError as e:
        raise ValueError(
            f"Cannot write the token cache {path!r} ({e.strerror}); set data.cache_dir to a "
            "writable directory."
        ) from e
    return path


class TokenRowReader:
    """Rows of `seq_len` ids of a cached token stream; MDLM-wrapped when `frame` = (bos, eos).

    Row r is stream[r L : (r + 1) L], or with a frame [bos] + stream[r (L-2) : (r+1) (L-2)] +
    [eos]. Opens its memory map lazily and pickles as its arguments.
    """

    def __init__(self, path: str, seq_len: int, frame: tuple[int, int] | None = None):
        self.path, self.seq_len, self.frame = path, int(seq_len), frame
        self.body = self.seq_len - 2 if frame is not None else self.seq_len
        self.num_tokens = int(np.load(path, mmap_mode="r").shape[0])
        self._len = self.num_tokens // self.body
        if self._len == 0:
            raise ValueError(
                f"The token stream {path!r} has {self.num_tokens} tokens, fewer than one row "
                f"of {self.seq_len}; lower data.seq_len or use a larger corpus."
            )

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_tokens"}

    @functools.cached_property
    def _tokens(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """{"x": int32 (k, seq_len)} for the k row indices."""
        starts = np.asarray(indices, np.int64) * self.body
        x = np.asarray(self._tokens[starts[:, None] + np.arange(self.body)], np.int32)
        if self.frame is not None:
            bos, eos = (np.full((x.shape[0], 1), t, np.int32) for t in self.frame)
            x = np.concatenate([bos, x, eos], axis=1)
        return {"x": x}


def _frame(tokenizer: Tokenizer) -> tuple[int, int]:
    if tokenizer.eos_id is None:
        raise ValueError(
            "source='tfds_text' wraps rows in BOS ... EOS and needs a tokenizer with an EOS "
            "(or [SEP]) token."
        )
    bos = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    return int(bos), int(tokenizer.eos_id)


def open_reader(spec: dict[str, Any]) -> TokenRowReader:
    """The row reader of a parsed text config, tokenizing and caching its corpus if needed."""
    tokenizer = load_tokenizer(spec["tokenizer"])
    text = corpus(spec)
    path = token_stream(text, tokenizer)
    return TokenRowReader(path, spec["seq_len"], _frame(tokenizer) if text.wrapped else None)


def decode_rows(spec: dict[str, Any], tokens: np.ndarray) -> list[str]:
    """The texts of token rows (n, L) under the source's tokenizer (special ids dropped)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"Expected token rows (n, L), got shape {tokens.shape}.")
    tokenizer = load_tokenizer(spec["tokenizer"])
    return [tokenizer.decode(row) for row in tokens]


__all__ = [
    "DEFAULT_CACHE_DIR",
    "OWT_SPLITS",
    "OWT_VALIDATION_DOCUMENTS",
    "SPLITS",
    "TEST_FRACTION",
    "TEXT_SOURCES",
    "TFDS_TEXT_DATASETS",
    "Corpus",
    "TokenRowReader",
    "check_spec",
    "corpus",
    "decode_rows",
    "lm1b_detokenize",
    "open_reader",
    "python_docs_topics",
    "resolve_text_files",
    "split_document",
    "stream_key",
    "token_stream",
]
