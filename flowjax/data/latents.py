"""A dataset encoded once into an autoencoder's latent space, for latent flow matching (Rombach
et al., 2022; the latent runs of Berrada et al.).

`write_latents` encodes the examples of a record reader (any `flowjax.data.sources` reader:
in-memory arrays, ArrayRecord, TFDS, digits) a batch at a time with an encoder function and
writes the result with its labels to ArrayRecord (`write_array_record`'s format), one shard per
process: with P processes, process p encodes the contiguous p-th part of the examples and
writes `<prefix>-<p:05d>-of-<P:05d>.array_record`. The glob `latents_glob(prefix)` is then an
`array_record` data source like any other (`{"source": "array_record", "path": glob}`): grain
reads, shuffles and splits it over processes, and a run resumes exactly.

What is stored (`store`):

- "mean": scaling_factor * the posterior mean, (h, w, z);
- "sample": scaling_factor * one posterior sample, drawn once with the given key;
- "moments": the scaled mean and standard deviation concatenated on the channel axis, (h, w,
  2 z), so that a fresh sample can be drawn at every use (`sample_moments`).

The encoder is any function `encode(images (B, H, W, C)) -> (mean, logvar)`, e.g.
`AutoencoderKL.encode` under `jax.jit`; the data layer knows nothing of the network.
`decode_in_batches` maps a decoder over a large array of samples (FID of latent samples).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.data.sources import write_array_record

STORES = ("mean", "sample", "moments")
"""What `write_latents` can store per example."""


def latents_shard(prefix: str, process_index: int, process_count: int) -> str:
    """The file a process writes: `<prefix>-<p:05d>-of-<P:05d>.array_record`."""
    return f"{prefix}-{process_index:05d}-of-{process_count:05d}.array_record"


def latents_glob(prefix: str) -> str:
    """The glob of all of a store's shards (the `path` of its array_record source)."""
    return f"{prefix}-*-of-*.array_record"


def write_latents(
    encode: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    reader: Any,
    prefix: str,
    *,
    scaling_factor: float,
    batch_size: int = 64,
    store: str = "mean",
    key: jax.Array | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> str:
    """Encodes this process's part of `reader` and writes it; returns the shard's path.

    Args:
      encode: images (B, H, W, C) -> (mean, logvar) of the posterior.
      reader: a record reader (`len(reader)`, `reader.read(indices)` -> {"x", ["label"]}).
      prefix: the store's path without the shard suffix.
      scaling_factor: multiplies the latents (SD's VAE: 0.18215).
      batch_size: examples per call of `encode` (the last batch is padded, then cut).
      store: "mean", "sample" (needs `key`) or "moments" (module docstring).
      key: the PRNG key of the "sample" store (folded with the process index and batch).
      process_index, process_count: this process's place (default: JAX's).
    """
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}, got {store!r}.")
    if store == "sample" and key is None:
        raise ValueError('store="sample" draws one posterior sample per example: pass key=.')
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    p = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    if not 0 <= p < n:
        raise ValueError(f"process_index must be in [0, {n}), got {p}.")
    total = len(reader)
    start, stop = total * p // n, total * (p + 1) // n
    if stop <= start:
        raise ValueError(f"Process {p} of {n} has no examples of the {total} to encode.")
    parts, labels = [], []
    for first in range(start, stop, batch_size):
        indices = np.arange(first, min(first + batch_size, stop))
        batch = reader.read(indices)
        images = np.asarray(batch["x"], np.float32)
        if images.ndim != 4:
            raise ValueError(f"Expected images (B, H, W, C) from the reader, got {images.shape}.")
        padded = np.concatenate([images, np.repeat(images[-1:], batch_size - len(indices), 0)])
        mean, logvar = (np.asarray(a)[: len(indices)] for a in encode(jnp.asarray(padded)))
        if store == "mean":
            out = scaling_factor * mean
        elif store == "sample":
            noise = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, p), first),
                                      mean.shape, jnp.float32)
            out = scaling_factor * (mean + np.exp(0.5 * logvar) * np.asarray(noise))
        else:
            out = scaling_factor * np.concatenate([mean, np.exp(0.5 * logvar)], axis=-1)
        parts.append(out.astype(np.float32))
        if "label" in batch:
            labels.append(np.asarray(batch["label"]))
    path = latents_shard(prefix, p, n)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_array_record(
        path, np.concatenate(parts), np.concatenate(labels) if labels else None
    )


def sample_moments(key: jax.Array, moments: jax.Array) -> jax.Array:
    """A scaled posterior sample from a "moments" store's (..., 2 z): mean + std * N(0, I)."""
    mean, std = jnp.split(moments, 2, axis=-1)
    return mean + std * jax.random.normal(key, mean.shape, mean.dtype)


def decode_in_batches(
    decode: Callable[[jax.Array], jax.Array], latents: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """decode over `latents` (N, h, w, z) a batch at a time (the last padded), as NumPy."""
    out = []
    for first in range(0, len(latents), batch_size):
        chunk = np.asarray(latents[first : first + batch_size])
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - len(chunk), 0)])
        out.append(np.asarray(decode(jnp.asarray(padded)))[: len(chunk)])
    return np.concatenate(out)


__all__ = [
    "STORES",
    "decode_in_batches",
    "latents_glob",
    "latents_shard",
    "sample_moments",
    "write_latents",
]
