"""Per-example text embeddings from a local directory, for text-conditioned image flows.

Berrada et al., 2024 (section 3) condition on a caption through attention: the text encoder's
token outputs (B, M, D) become M more tokens of the DiT (`flowjax.models.DiT` with
conditioning="attention" and context_dim=D). The captions are encoded once, outside training,
by any text encoder (T5, CLIP, ...), and stored next to the images:

    <path>/context.npy         (N, M, D) float16 or float32: row i is the caption of record i
                               of the data source (same order), padded to M tokens
    <path>/context_length.npy  (N,) int32: the number of valid tokens of each row, 1..M

`save_text_embeddings` writes such a directory; `TextEmbeddings` reads rows of it by record
index, memory-mapped (the file may be far larger than memory, and grain's worker processes
each map it again). The data pipeline (`data.context_path`) adds the rows of each batch as
"context" float32 (local, M, D) and "context_length" int32 (local,); the trainer pads every
row past its length by noisy replication (`flowjax.models.noisy_replicate_padding`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

CONTEXT_FILE = "context.npy"
LENGTH_FILE = "context_length.npy"


def save_text_embeddings(
    path: str, context: np.ndarray, lengths: np.ndarray | None = None
) -> str:
    """Writes context (N, M, D) float and lengths (N,) in [1, M] (None: all M tokens valid) to
    the directory `path` (created); returns `path`."""
    context = np.asarray(context)
    if context.ndim != 3 or not np.issubdtype(context.dtype, np.floating) or 0 in context.shape:
        raise ValueError(
            "Text embeddings must be a non-empty float array (N, M, D): N captions of M token "
            f"embeddings of width D; got {context.dtype} {context.shape}."
        )
    n, m, _ = context.shape
    lengths = np.full(n, m, np.int32) if lengths is None else np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be integers of shape ({n},), got {lengths.dtype} "
                         f"{lengths.shape}.")
    if lengths.min() < 1 or lengths.max() > m:
        raise ValueError(f"lengths must lie in [1, {m}] (valid tokens per caption), got "
                         f"[{lengths.min()}, {lengths.max()}].")
    os.makedirs(path, exist_ok=True)
    np.save(os.path.join(path, CONTEXT_FILE), context)
    np.save(os.path.join(path, LENGTH_FILE), lengths.astype(np.int32))
    return path


def check_text_embeddings(path: str) -> tuple[int, int, int]:
    """(N, M, D) of the embeddings directory at `path`, read from the file headers; a clear
    error for a missing directory or file, or arrays that do not fit together."""
    files = [os.path.join(path, name) for name in (CONTEXT_FILE, LENGTH_FILE)]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(
            f"No text embeddings at {path!r}: missing {', '.join(missing)}. Write them with "
            "flowjax.data.save_text_embeddings(path, context (N, M, D), lengths (N,))."
        )
    context = np.load(files[0], mmap_mode="r")
    lengths = np.load(files[1], mmap_mode="r")
    if context.ndim != 3 or not np.issubdtype(context.dtype, np.floating):
        raise ValueError(f"{files[0]} must hold float (N, M, D), got {context.dtype} "
                         f"{context.shape}.")
    if lengths.shape != context.shape[:1]:
        raise ValueError(f"{files[1]} must hold one length per caption, shape "
                         f"({context.shape[0]},), got {lengths.shape}.")
    return tuple(int(s) for s in context.shape)


class TextEmbeddings:
    """Rows of a `save_text_embeddings` directory by index: `read(indices (b,))` ->
    {"context": float32 (b, M, D), "context_length": int32 (b,)}, memory-mapped."""

    def __init__(self, path: str):
        self.path = str(path)
        self.shape = check_text_embeddings(self.path)
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}  # worker processes map the files again

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def token_shape(self) -> tuple[int, int]:
        """(M, D): tokens per caption and their width."""
        return self.shape[1], self.shape[2]

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = tuple(
                np.load(os.path.join(self.path, name), mmap_mode="r")
                for name in (CONTEXT_FILE, LENGTH_FILE)
            )
        context, lengths = self._arrays
        indices = np.asarray(indices)
        return {
            "context": np.asarray(context[indices], np.float32),
            "context_length": np.asarray(lengths[indices], np.int32),
        }


__all__ = ["TextEmbeddings", "check_text_embeddings", "save_text_embeddings"]
