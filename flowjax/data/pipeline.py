"""grain input pipelines: deterministic, resumable, per-process batches from a `data` config.

`build_dataset(config, global_batch_size=..., seed=..., process_index=..., process_count=...)`
returns an infinite `grain.DatasetIterator` of dicts of NumPy arrays for one process:

    {"x": float32 (global_batch_size // process_count, *event_shape),  # int32: discrete toys
                                                                       # and tokens (seq_len,)
     "label": int32 (global_batch_size // process_count,)}     # labelled sources only

and for `couplings` {"x": int32 (local, L), "x_start": int32 (local, L), "t": float32 (local,),
"noise_seed": uint32 (local,)}, local = global_batch_size // process_count.

Design: element i of the underlying `grain.MapDataset` is *global batch i*, computed by a pure
function of (config, seed, i); each process keeps rows
[process_index * local, (process_index + 1) * local) of it and reads only those. Hence

- resuming at step k (iterator state {"next_index": k}) reproduces the same batches;
- any split of the same global batch over processes gives the same data (1 process x 8
  devices and 2 processes x 4 devices see identical global batches);
- the processes read disjoint records, and together each record once per epoch.

Record sources (`arrays`, `array_record`, `tfds`, `couplings`, ...) see the data as an endless
stream of epochs: epoch e is a permutation of all n records drawn from
`numpy.random.default_rng([seed, e, 0x5045524D])` (the identity when `shuffle=False`), global
batch i is positions [i*B, (i+1)*B) of that stream (a batch may straddle two epochs, so no
record is ever skipped), and with `num_epochs` set the stream stops after that many epochs,
dropping the incomplete last batch. Gathering a whole batch of indices at once keeps the cost
per batch in vectorised NumPy instead of one Python call per record. Toy sources draw global
batch i from `numpy.random.default_rng([seed, i])` (see `flowjax.data.toy`).

Why not grain's own `shuffle` / `batch` / per-process sharding: grain's MapDataset chain
(`.shuffle(seed).repeat().batch(B)` after `ds[process_index::process_count]`) also resumes
exactly, but it shards records before batching, so the global batch depends on the number of
processes (the sharded trainer's tests compare 1 x 8 against 2 x 4 devices step by step), and
its `batch` reads one record per Python call. Slicing each process's rows out of a global
grain batch instead would make every process read every record. So the permutation, the
straddling batches and the row slice are this module's (a few vectorised NumPy lines), and
grain does what it does best here: the random-access `MapDataset`, threads and prefetching,
multiprocessing, and the checkpointable iterator.

Post-processing, identical for all sources: uint8 examples (images) are mapped to [-1, 1] by
x / 127.5 - 1, any other dtype is cast to float32 (token ids of the text sources and
`couplings` stay int32, and a reader's other per-example arrays pass through as read); with
`random_flip=True` each image of shape (H, W, C) is flipped left-right with probability 1/2,
decided by `numpy.random.default_rng([seed, i, 0x464C4950])` for global batch i (so also
deterministic). With `flip_control=True` as well, the batch carries the flip as control
metadata, "control": float32 (local, 1), 1.0 for a flipped image (the control conditioning of
Berrada et al., 2024; `flowjax.models.conditioning`). With `context_path` (the image sources)
the batch carries each record's text embeddings from that directory
(`flowjax.data.text_embeddings`: one row per record, in the source's order), "context" float32
(local, M, D) and "context_length" int32 (local,).

Config keys (a `ml_collections.ConfigDict` or a dict; unknown keys raise):

    common:        source, worker_count=0, num_threads=1, prefetch_buffer_size=2
    "toy":         name (one of TOY_DISTRIBUTIONS)
    "arrays":      path (.npz, or .npy memory-mapped), x_key="x", label_key=None, shuffle=True,
                   num_classes=None, random_flip=False, flip_control=False, num_epochs=None,
                   context_path=None
    "array_record": path (file, glob or list, written by write_array_record), shuffle=True,
                   num_classes=None, random_flip=False, flip_control=False, num_epochs=None,
                   context_path=None
    "tfds":        name, split="train", data_dir=None, image_key="image", label_key="label",
                   shuffle=True, random_flip=False, flip_control=False, num_epochs=None,
                   context_path=None
    "digits":      split="train" (or "test"), shuffle=True, random_flip=False,
                   flip_control=False, num_epochs=None, context_path=None
                   (scikit-learn's 8x8 digits in [-1, 1], labels 0-9; `flowjax.data.images`)
    "synthetic_text": name ("markov", "noisy_copy" or "repeated_token"), vocab_size, seq_len,
                   language_seed=0, concentration=None (markov, noisy_copy), order=1 (markov),
                   noise=0.05 (noisy_copy): tokens (L,)
                   of a synthetic language of `flowjax.data.languages` (exact likelihood and
                   entropy), global batch i drawn from numpy.random.default_rng([seed, i])
    "tabular":     name (one of flowjax.data.tabular.TABULAR_SETS), split="train" or "test",
                   shuffle=True, num_epochs=None; regression sets give float32 "target"
                   (local, k) instead of "label"
    "text_files":  path (directory of .txt files, glob or list), seq_len, tokenizer="bytes",
                   split="train" (or "test"), shuffle=True, num_epochs=None, cache_dir=None
    "tfds_text":   name ("lm1b" or "openwebtext"), tokenizer, seq_len, split="train" ("test" /
                   "validation"), data_dir=None, shuffle=True, num_epochs=None, cache_dir=None
    "python_docs": seq_len, tokenizer="bytes", split="train" (or "test"), shuffle=True,
                   num_epochs=None, cache_dir=None
                   The three text sources give int32 token rows (local, seq_len): the corpus is
                   tokenized once into a cached stream cut into rows, read as records
                   (`flowjax.data.text`; tokenizers: `flowjax.data.tokenizers`).
    "couplings":   path (.npz written by flowjax.data.save_couplings or
                   flowjax.train.couplings.write_couplings), shuffle=True, num_epochs=None:
                   a teacher's samples x with the states x_start it started from at times t
                   and the seeds noise_seed of their infinite-mask labels, for rectified-
                   coupling distillation; vocab_size is stored in the file (format:
                   `flowjax.data.sources`), which is checked when it is opened.
    "point_clouds": name ("shapes", "set_multimnist" or "shapenet"), split="train" ("test";
                   also "val" for shapenet), num_points=None (2048 for shapes and shapenet,
                   600 for set_multimnist), path=None (the ShapeNetCore.v2.PC15k directory of
                   shapenet), categories=("airplane",) (shapenet), shuffle=True,
                   num_epochs=None: sets of points for SetVAE (`flowjax.data.pointclouds`),
                   {"x": float32 (local, N, D), "mask": bool (local, N) (True for a real
                   point; padded points are zeros), "label": int32 (local,) for shapes only}.
    "moving_digits": split="train" (or "test"), num_frames=16, canvas=32, digits=1,
                   sprite_size=12, max_speed=3, shuffle=True, num_epochs=None: videos of
                   bouncing scikit-learn digits (`flowjax.data.videos`), {"x": float32 (local,
                   T, canvas, canvas, 1)} in [-1, 1].
    "video_tokens": path (.npz written by flowjax.data.write_video_tokens, or a .npy with
                   codebook_size set), codebook_size=None, shuffle=True, num_epochs=None:
                   a video tokenizer's codes, {"x": int32 (local, t, h, w), "tokens": the same}.
    "video_folder": path, split="train", num_frames=16, resolution=128, shuffle=True,
                   num_epochs=None: clips of local videos (layout in `flowjax.data.videos`),
                   {"x": float32 (local, T, resolution, resolution, 3)} in [-1, 1].
    "scenes":      name ("shapes", "directory" or "tfds"), split="train" ("test"),
                   image_size=32, min_objects=2, max_objects=5, background="plain"
                   ("textured") (shapes), path=None (directory), tfds_name=None,
                   data_dir=None, image_key="image", mask_key="segmentations" (tfds),
                   shuffle=True, num_epochs=None: multi-object scenes with instance masks
                   (`flowjax.data.scenes`), {"x": float32 (local, H, W, 3) in [-1, 1],
                   "mask": int32 (local, H, W), 0 = background}.

`num_threads` / `prefetch_buffer_size` are grain's `ReadOptions` (threads computing whole
batches ahead, and how many batches to hold); `worker_count > 0` adds grain multiprocessing
(`IterDataset.mp_prefetch`), which also keeps the iterator checkpointable.

Checkpointing the iterator: grain's iterator state is `it.get_state()` / `it.set_state(s)`
(a small JSON-able dict), and with Orbax it is the pair of checkpoint args
`grain.checkpoint.CheckpointSave(it)` / `grain.checkpoint.CheckpointRestore(it)` (handler
`grain.checkpoint.CheckpointHandler`), e.g. inside
`ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it), ...)`. The handler writes one
file per process named by `jax.process_index()` / `jax.process_count()`.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np

from flowjax.data import images as _images
from flowjax.data import languages
from flowjax.data import pointclouds as _pointclouds
from flowjax.data import scenes as _scenes
from flowjax.data import sources as _src
from flowjax.data import tabular as _tabular
from flowjax.data import text as _text
from flowjax.data import videos as _videos
from flowjax.data.text_embeddings import TextEmbeddings
from flowjax.data.tokenizers import load_tokenizer
from flowjax.data.toy import (
    TOY_DISTRIBUTIONS,
    check_toy_name,
    toy_batch,
    toy_event_shape,
    toy_vocab_size,
)

SOURCES: tuple[str, ...] = (
    "toy",
    "arrays",
    "array_record",
    "tfds",
    "digits",
    "tabular",
    "synthetic_text",
    *_text.TEXT_SOURCES,
    "couplings",
    "point_clouds",
    "moving_digits",
    "video_tokens",
    "video_folder",
    "scenes",
)
"""Values accepted for `config.source`."""

_REQUIRED = object()
_COMMON_KEYS: dict[str, Any] = {
    "source": _REQUIRED,
    "worker_count": 0,
    "num_threads": 1,
    "prefetch_buffer_size": 2,
}
_SOURCE_KEYS: dict[str, dict[str, Any]] = {
    "toy": {"name": _REQUIRED},
    "arrays": {
        "path": _REQUIRED,
        "x_key": "x",
        "label_key": None,
        "shuffle": True,
        "num_classes": None,
        "random_flip": False,
        "flip_control": False,
        "num_epochs": None,
        "context_path": None,
    },
    "array_record": {
        "path": _REQUIRED,
        "shuffle": True,
        "num_classes": None,
        "random_flip": False,
        "flip_control": False,
        "num_epochs": None,
        "context_path": None,
    },
    "tfds": {
        "name": _REQUIRED,
        "split": "train",
        "data_dir": None,
        "image_key": "image",
        "label_key": "label",
        "shuffle": True,
        "random_flip": False,
        "flip_control": False,
        "num_epochs": None,
        "context_path": None,
    },
    "digits": {
        "split": "train",
        "shuffle": True,
        "random_flip": False,
        "flip_control": False,
        "num_epochs": None,
        "context_path": None,
    },
    "tabular": {"name": _REQUIRED, "split": "train", "shuffle": True, "num_epochs": None},
    # A synthetic language of flowjax.data.languages: order applies to "markov", noise to
    # "noisy_copy"; concentration None takes the language's default ("repeated_token" has none).
    "synthetic_text": {
        "name": _REQUIRED,
        "vocab_size": _REQUIRED,
        "seq_len": _REQUIRED,
        "language_seed": 0,
        "concentration": None,
        "order": 1,
        "noise": 0.05,
    },
    # Tokenized text (flowjax.data.text): rows of seq_len token ids of a cached token stream.
    "text_files": {
        "path": _REQUIRED,
        "seq_len": _REQUIRED,
        "tokenizer": "bytes",
        "split": "train",
        "shuffle": True,
        "num_epochs": None,
        "cache_dir": None,
    },
    "tfds_text": {
        "name": _REQUIRED,
        "tokenizer": _REQUIRED,
        "seq_len": _REQUIRED,
        "split": "train",
        "data_dir": None,
        "shuffle": True,
        "num_epochs": None,
        "cache_dir": None,
    },
    "python_docs": {
        "seq_len": _REQUIRED,
        "tokenizer": "bytes",
        "split": "train",
        "shuffle": True,
        "num_epochs": None,
        "cache_dir": None,
    },
    # A teacher's samples with their starting states (flowjax.data.sources.save_couplings).
    "couplings": {"path": _REQUIRED, "shuffle": True, "num_epochs": None},
    # Point sets for SetVAE (flowjax.data.pointclouds); num_points None: the set's default.
    "point_clouds": {
        "name": _REQUIRED,
        "split": "train",
        "num_points": None,
        "path": None,
        "categories": _pointclouds.DEFAULT_CATEGORIES,
        "shuffle": True,
        "num_epochs": None,
    },
    # Videos (flowjax.data.videos): bouncing digits, a tokenizer's codes, local video folders.
    "moving_digits": {
        "split": "train",
        **_videos.MOVING_DIGITS_DEFAULTS,
        "shuffle": True,
        "num_epochs": None,
    },
    "video_tokens": {"path": _REQUIRED, "codebook_size": None, "shuffle": True, "num_epochs": None},
    "video_folder": {
        "path": _REQUIRED,
        "split": "train",
        "num_frames": 16,
        "resolution": 128,
        "shuffle": True,
        "num_epochs": None,
    },
    # Multi-object scenes with instance masks (flowjax.data.scenes).
    "scenes": {
        "name": _REQUIRED,
        "split": "train",
        "image_size": 32,
        "min_objects": 2,
        "max_objects": 5,
        "background": "plain",
        "path": None,
        "tfds_name": None,
        "data_dir": None,
        "image_key": "image",
        "mask_key": "segmentations",
        "shuffle": True,
        "num_epochs": None,
    },
}

GENERATED = ("toy", "synthetic_text")
"""Sources whose batches are drawn from a distribution, not read from records."""

_TOKEN_SOURCES = (*_text.TEXT_SOURCES, "couplings", "video_tokens")
"""Record sources whose "x" holds token ids (kept int32, not cast to float32)."""

# Domain tags keeping the NumPy streams of permutations and flips apart from the toy stream.
_PERMUTATION_TAG = 0x5045524D
_FLIP_TAG = 0x464C4950


# --------------------------------------------------------------------------------------------
# Config parsing and argument checks.


def _is_int(value: Any) -> bool:
    """Whether `value` is an integer (a bool is not one here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _as_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"Expected a data ConfigDict or dict, got {type(config).__name__}.")


def parse_config(config: Any) -> dict[str, Any]:
    """The data config as a plain dict with defaults filled in; raises on any bad key or value.

    Checks only what needs no file access: the source name, the allowed keys for that source,
    the toy name and the types of the numeric options.
    """
    raw = _as_dict(config)
    source = raw.get("source", None)
    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}.")
    schema = {**_COMMON_KEYS, **_SOURCE_KEYS[source]}
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in the data config for source={source!r}; "
            f"allowed keys: {sorted(schema)}."
        )
    spec: dict[str, Any] = {}
    for key, default in schema.items():
        value = raw.get(key, default)
        if value is _REQUIRED:
            raise ValueError(f"data.{key} is required for source={source!r}.")
        spec[key] = value
    if source == "toy":
        check_toy_name(spec["name"])
    if source == "synthetic_text":
        _language_of(spec)
    if source in _text.TEXT_SOURCES:
        _text.check_spec(spec)
    if source == "tabular":
        _tabular.tabular_set(spec["name"])
        _tabular.check_split(spec["split"])
    if source == "point_clouds":
        spec.update(_pointclouds.check_spec(spec))
    if source == "scenes":
        _scenes.check_spec(spec)
    if source == "moving_digits":
        _videos.MovingDigitsReader(**_moving_digits_args(spec))
    if source == "digits" and spec["split"] not in _images.DIGITS_SPLITS:
        raise ValueError(
            f"data.split={spec['split']!r} is not a digits split; expected one of "
            f"{_images.DIGITS_SPLITS}."
        )
    for key in ("worker_count", "num_threads", "prefetch_buffer_size"):
        if not _is_int(spec[key]) or spec[key] < 0:
            raise ValueError(f"data.{key} must be a non-negative int, got {spec[key]!r}.")
    num_epochs = spec.get("num_epochs")
    if num_epochs is not None and (not _is_int(num_epochs) or num_epochs < 1):
        raise ValueError(f"data.num_epochs must be None (forever) or >= 1, got {num_epochs!r}.")
    if spec.get("flip_control") and not spec.get("random_flip"):
        raise ValueError(
            "data.flip_control=True records each image's random flip as control metadata: "
            "set data.random_flip=True as well."
        )
    num_classes = spec.get("num_classes")
    if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
        raise ValueError(f"data.num_classes must be None or a positive int, got {num_classes!r}.")
    return spec


def _check_batch_args(
    global_batch_size: int, seed: int, process_index: int, process_count: int
) -> int:
    """Checks the sharding arguments and returns the per-process batch size."""
    for name, value in (
        ("global_batch_size", global_batch_size),
        ("seed", seed),
        ("process_index", process_index),
        ("process_count", process_count),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int, got {value!r}.")
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}.")
    if process_count < 1:
        raise ValueError(f"process_count must be >= 1, got {process_count}.")
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, {process_count - 1}] for process_count="
            f"{process_count}, got {process_index}."
        )
    if global_batch_size % process_count:
        lower = (global_batch_size // process_count) * process_count
        suggestion = f"{lower} or {lower + process_count}" if lower else f"{process_count}"
        raise ValueError(
            f"global_batch_size ({global_batch_size}) must be divisible by process_count "
            f"({process_count}), so that every process gets global_batch_size // "
            f"process_count examples; use a multiple of {process_count}, e.g. {suggestion}."
        )
    return global_batch_size // process_count


def _open_reader(spec: dict[str, Any]) -> _src.RecordReader:
    """Opens (and so checks) the record source of a parsed non-toy config."""
    source = spec["source"]
    if source == "arrays":
        path = str(spec["path"])
        _src.check_array_file(path, spec["x_key"], spec["label_key"])
        return _src.LazyArrayFileReader(path, spec["x_key"], spec["label_key"])
    if source == "array_record":
        return _src.ArrayRecordReader(_src.resolve_paths(spec["path"]))
    if source == "tfds":
        builder = _src.tfds_builder(spec["name"], spec["data_dir"])
        _src.check_tfds_split(builder, spec["split"])
        _src.tfds_event_shape(builder, spec["image_key"])
        _src.tfds_num_classes(builder, spec["label_key"])
        return _src.TfdsReader(
            spec["name"], spec["split"], spec["data_dir"], spec["image_key"], spec["label_key"]
        )
    if source == "digits":
        return _images.digits_reader(spec["split"])
    if source == "tabular":
        return _tabular.TabularReader(spec["name"], spec["split"])
    if source in _text.TEXT_SOURCES:
        return _text.open_reader(spec)
    if source == "couplings":
        return _src.CouplingsReader(str(spec["path"]))
    if source == "point_clouds":
        return _pointclouds.open_reader(spec)
    if source == "scenes":
        return _scenes.open_reader(spec)
    if source == "moving_digits":
        return _videos.MovingDigitsReader(**_moving_digits_args(spec))
    if source == "video_tokens":
        return _videos.VideoTokensReader(str(spec["path"]), spec["codebook_size"])
    if source == "video_folder":
        return _videos.VideoFolderReader(
            spec["path"], spec["split"], spec["num_frames"], spec["resolution"]
        )
    raise AssertionError(source)


def _moving_digits_args(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("split", *_videos.MOVING_DIGITS_DEFAULTS)}


def _open_context(spec: dict[str, Any], num_records: int) -> TextEmbeddings | None:
    """The text embeddings of `data.context_path` (None when unset), one row per record."""
    if not spec.get("context_path"):
        return None
    context = TextEmbeddings(str(spec["context_path"]))
    if len(context) != num_records:
        raise ValueError(
            f"data.context_path={spec['context_path']!r} holds {len(context)} captions, but the "
            f"source has {num_records} records: it needs one row per record, in the same order."
        )
    return context


# --------------------------------------------------------------------------------------------
# Global batch i -> this process's rows.


class EpochIndexSampler:
    """Record indices of global batch i of an endless stream of (optionally shuffled) epochs.

    Position p of the stream is record perm_e[p % n] with e = p // n, where perm_e is the
    permutation of epoch e drawn from `numpy.random.default_rng([seed, e, tag])` (identity
    when `shuffle` is False); global batch i covers positions [i*B, (i+1)*B). The last few
    permutations are cached, so a batch costs O(B) after the first batch of each epoch.
    """

    def __init__(self, num_records: int, global_batch_size: int, seed: int, shuffle: bool):
        if num_records < 1:
            raise ValueError("The data source is empty.")
        self.num_records = int(num_records)
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_cache", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = OrderedDict()
        self._lock = threading.Lock()

    def permutation(self, epoch: int) -> np.ndarray:
        """The order in which epoch `epoch` visits the records."""
        with self._lock:
            perm = self._cache.get(epoch)
            if perm is not None:
                self._cache.move_to_end(epoch)
                return perm
        rng = np.random.default_rng([self.seed, epoch, _PERMUTATION_TAG])
        perm = rng.permutation(self.num_records)
        with self._lock:
            self._cache[epoch] = perm
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return perm

    def indices(self, index: int) -> np.ndarray:
        """The global batch's record indices, shape (global_batch_size,)."""
        b, n = self.global_batch_size, self.num_records
        positions = index * b + np.arange(b, dtype=np.int64)
        epochs, within = np.divmod(positions, n)
        if not self.shuffle:
            return within
        first, last = int(epochs[0]), int(epochs[-1])
        if first == last:
            return self.permutation(first)[within]
        out = np.empty(b, dtype=np.int64)
        for epoch in range(first, last + 1):
            mask = epochs == epoch
            out[mask] = self.permutation(epoch)[within[mask]]
        return out


def _to_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)
    return np.asarray(x, dtype=np.float32)


class _Rows:
    """The rows [lo, hi) of a global batch that belong to one process."""

    def __init__(self, process_index: int, local_batch_size: int):
        self.lo = process_index * local_batch_size
        self.hi = self.lo + local_batch_size


class ToyBatch:
    """grain map: global batch index -> this process's rows of the toy batch."""

    def __init__(self, name: str, global_batch_size: int, seed: int, rows: _Rows):
        self.name = name
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.rows = rows

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        x = toy_batch(self.name, self.global_batch_size, seed=self.seed, index=int(index))
        return {"x": x[self.rows.lo : self.rows.hi]}


class LanguageBatch:
    """grain map: global batch index -> this process's rows of a synthetic language's batch,
    drawn from numpy.random.default_rng([seed, index])."""

    def __init__(self, lang: languages.Language, global_batch_size: int, seed: int, rows: _Rows):
        self.language = lang
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.rows = rows

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        x = self.language.sample(rng, self.global_batch_size)
        return {"x": x[self.rows.lo : self.rows.hi]}


class RecordBatch:
    """grain map: global batch index -> this process's rows, read from a record source.

    "x" is cast to float32 (unless `tokens`), "label" to int32, "target" to float32; the
    reader's other per-example arrays (e.g. a couplings file's "x_start", "t", "noise_seed")
    pass through in the dtype it reads them.
    """

    def __init__(
        self,
        reader: _src.RecordReader,
        sampler: EpochIndexSampler,
        rows: _Rows,
        random_flip: bool,
        tokens: bool = False,
        flip_control: bool = False,
        context: TextEmbeddings | None = None,
    ):
        self.reader = reader
        self.context = context
        self.sampler = sampler
        self.rows = rows
        self.random_flip = random_flip
        self.flip_control = flip_control
        self.tokens = tokens  # token ids stay int32

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        records = self.sampler.indices(index)[self.rows.lo : self.rows.hi]
        batch = self.reader.read(records)
        x = batch["x"] if self.tokens else _to_float(batch["x"])
        if self.random_flip and x.ndim == 4:
            rng = np.random.default_rng([self.sampler.seed, index, _FLIP_TAG])
            flip = (rng.random(self.sampler.global_batch_size) < 0.5)[self.rows.lo : self.rows.hi]
            x = np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
        out = {"x": np.ascontiguousarray(x)}
        if self.flip_control:
            out["control"] = flip.astype(np.float32)[:, None]
        if "label" in batch:
            out["label"] = batch["label"].astype(np.int32)
        if "target" in batch:  # regression targets of the tabular sets
            out["target"] = np.asarray(batch["target"], np.float32)
        for key, value in batch.items():
            if key not in ("x", "label", "target"):
                out[key] = np.ascontiguousarray(value)
        if self.context is not None:
            out.update(self.context.read(records))
        return out


# --------------------------------------------------------------------------------------------
# Public entry points.


def _map_dataset(
    spec: dict[str, Any],
    reader: _src.RecordReader | None,
    global_batch_size: int,
    seed: int,
    process_index: int,
    local: int,
) -> grain.MapDataset:
    rows = _Rows(process_index, local)
    if spec["source"] == "toy":
        fn: Any = ToyBatch(spec["name"], global_batch_size, seed, rows)
        length = sys.maxsize
    elif spec["source"] == "synthetic_text":
        fn = LanguageBatch(_language_of(spec), global_batch_size, seed, rows)
        length = sys.maxsize
    else:
        assert reader is not None
        sampler = EpochIndexSampler(len(reader), global_batch_size, seed, spec["shuffle"])
        fn = RecordBatch(
            reader,
            sampler,
            rows,
            bool(spec.get("random_flip", False)),
            tokens=spec["source"] in _TOKEN_SOURCES,
            flip_control=bool(spec.get("flip_control", False)),
            context=_open_context(spec, len(reader)),
        )
        if spec["num_epochs"] is None:
            length = sys.maxsize
        else:
            length = spec["num_epochs"] * len(reader) // global_batch_size
            if length == 0:
                raise ValueError(
                    f"num_epochs={spec['num_epochs']} of {len(reader)} records gives no full "
                    f"global batch of {global_batch_size}; lower global_batch_size or raise "
                    "num_epochs."
                )
    return grain.MapDataset.range(length).map(fn)


def build_map_dataset(
    config: Any,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.MapDataset:
    """The random-access `grain.MapDataset` whose element i is this process's part of batch i.

    Same arguments and checks as `build_dataset`; useful to look at a given step directly.
    """
    local = _check_batch_args(global_batch_size, seed, process_index, process_count)
    spec = parse_config(config)
    reader = None if spec["source"] in GENERATED else _open_reader(spec)
    return _map_dataset(spec, reader, global_batch_size, seed, process_index, local)


def _ensure_absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside `absl.app.run` nothing parsed them.

    Marks the (default-valued) flags as parsed in that case only, as a notebook would.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _iterate(ds: grain.MapDataset, spec: dict[str, Any]) -> grain.DatasetIterator:
    read_options = grain.ReadOptions(
        num_threads=int(spec["num_threads"]),
        prefetch_buffer_size=int(spec["prefetch_buffer_size"]),
    )
    it_ds = ds.to_iter_dataset(read_options)
    if spec["worker_count"] > 0:
        _ensure_absl_flags_parsed()
        options = grain.MultiprocessingOptions(num_workers=int(spec["worker_count"]))
        it_ds = it_ds.mp_prefetch(options)
    return iter(it_ds)


def build_dataset(
    config: Any,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.DatasetIterator:
    """An infinite, checkpointable iterator over this process's share of every global batch.

    Args:
      config: the `data` sub-config (see the module docstring for the keys per source).
      global_batch_size: examples per step over all processes; must be divisible by
        `process_count`.
      seed: non-negative int; the stream is a pure function of (config, seed, step).
      process_index: this process (`jax.process_index()`).
      process_count: number of processes (`jax.process_count()`).

    Returns:
      A `grain.DatasetIterator` yielding {"x": float32 (local, *event_shape)} plus
      {"label": int32 (local,)} for labelled data (int32 "x" for tokens, and the extra
      arrays of `couplings` and the "mask" of `point_clouds`: see the module docstring),
      local = global_batch_size // process_count. Save / restore its position with
      `get_state()` / `set_state()` or Orbax's `grain.checkpoint.CheckpointSave` /
      `grain.checkpoint.CheckpointRestore`.

    Raises:
      ValueError: before any data is read, for an unknown source or toy name, an unknown
        config key, a batch size not divisible by `process_count`, a missing file or
        directory, a TFDS dataset that is not prepared locally, or a couplings file with
        missing arrays, shapes that disagree or values out of range.
      FileNotFoundError: for a missing couplings file.
    """
    local = _check_batch_args(global_batch_size, seed, process_index, process_count)
    spec = parse_config(config)
    reader = None if spec["source"] in GENERATED else _open_reader(spec)
    ds = _map_dataset(spec, reader, global_batch_size, seed, process_index, local)
    return _iterate(ds, spec)


def dataset_from_arrays(
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    shuffle: bool = True,
    random_flip: bool = False,
    num_epochs: int | None = None,
    num_threads: int = 1,
    prefetch_buffer_size: int = 2,
    worker_count: int = 0,
) -> grain.DatasetIterator:
    """`build_dataset` for arrays already in memory: x (n, *event) and optional labels (n,).

    The batches are exactly those of `source="arrays"` on a .npz file holding the same arrays.
    """
    local = _check_batch_args(global_batch_size, seed, process_index, process_count)
    spec = parse_config(
        dict(
            source="arrays",
            path="<in memory>",
            shuffle=shuffle,
            random_flip=random_flip,
            num_epochs=num_epochs,
            num_threads=num_threads,
            prefetch_buffer_size=prefetch_buffer_size,
            worker_count=worker_count,
        )
    )
    reader = _src.ArrayReader(x, labels)
    ds = _map_dataset(spec, reader, global_batch_size, seed, process_index, local)
    return _iterate(ds, spec)


def event_shape(config: Any) -> tuple[int, ...]:
    """The shape of one example x, read from metadata only (no batch is produced)."""
    spec = parse_config(config)
    source = spec["source"]
    if source == "toy":
        return toy_event_shape(spec["name"])
    if source == "synthetic_text" or source in _text.TEXT_SOURCES:
        return (int(spec["seq_len"]),)
    if source == "arrays":
        path = str(spec["path"])
        _src.check_array_file(path, spec["x_key"], spec["label_key"])
        shape, _ = _src.array_file_shape(path, spec["x_key"])
        return tuple(shape[1:])
    if source == "array_record":
        return _src.ArrayRecordReader(_src.resolve_paths(spec["path"])).event_shape
    if source == "digits":
        return _images.DIGITS_SHAPE
    if source == "tabular":
        return (_tabular.tabular_set(spec["name"]).input_dim,)
    if source == "couplings":
        return (_src.couplings_info(str(spec["path"])).seq_len,)
    if source == "point_clouds":
        return _pointclouds.event_shape(spec)
    if source == "scenes":
        return _scenes.event_shape(spec)
    if source in ("moving_digits", "video_folder"):
        return _open_reader(spec).event_shape
    if source == "video_tokens":
        return _open_reader(spec).grid
    builder = _src.tfds_builder(spec["name"], spec["data_dir"])
    return _src.tfds_event_shape(builder, spec["image_key"])


def control_dim(config: Any) -> int:
    """The number of control metadata values per example ("control"), 0 when there are none."""
    return 1 if parse_config(config).get("flip_control") else 0


def context_shape(config: Any) -> tuple[int, int] | None:
    """(M, D) of the text embeddings per example ("context"), None when there are none; read
    from the file headers, checking that there is one row per record."""
    spec = parse_config(config)
    if not spec.get("context_path"):
        return None
    return _open_context(spec, len(_open_reader(spec))).token_shape


def num_classes(config: Any) -> int | None:
    """The number of label classes, or None for unlabelled data (toys, no label key).

    `data.num_classes` wins when set; otherwise TFDS reads it from the dataset info, and the
    array sources take max(label) + 1 (reading all labels; for a large ArrayRecord source set
    `data.num_classes` to avoid the scan).
    """
    spec = parse_config(config)
    source = spec["source"]
    if source in GENERATED or source in _TOKEN_SOURCES:
        return None
    if source == "digits":
        return _images.DIGITS_NUM_CLASSES
    if source == "tabular":
        return _tabular.tabular_set(spec["name"]).num_classes
    if source == "point_clouds":
        return _pointclouds.num_classes(spec["name"])
    if source in ("moving_digits", "video_folder", "scenes"):
        return None
    if source == "tfds":
        builder = _src.tfds_builder(spec["name"], spec["data_dir"])
        return _src.tfds_num_classes(builder, spec["label_key"])
    if source == "arrays":
        path = str(spec["path"])
        _src.check_array_file(path, spec["x_key"], spec["label_key"])
        if spec["label_key"] is None:
            return None
        if spec["num_classes"] is not None:
            return int(spec["num_classes"])
        with np.load(path, allow_pickle=False) as data:
            return int(np.max(data[spec["label_key"]])) + 1
    reader = _src.ArrayRecordReader(_src.resolve_paths(spec["path"]))
    if not reader.has_labels:
        return None
    if spec["num_classes"] is not None:
        return int(spec["num_classes"])
    return reader.max_label() + 1


def vocab_size(config: Any) -> int | None:
    """The number of token values of discrete data (tokens in [0, vocab_size)), None for
    continuous data."""
    spec = parse_config(config)
    if spec["source"] == "synthetic_text":
        return int(spec["vocab_size"])
    if spec["source"] in _text.TEXT_SOURCES:
        return load_tokenizer(spec["tokenizer"]).vocab_size
    if spec["source"] == "couplings":
        return _src.couplings_info(str(spec["path"])).vocab_size
    if spec["source"] == "video_tokens":
        return _open_reader(spec).codebook_size
    return toy_vocab_size(spec["name"]) if spec["source"] == "toy" else None


def decode_tokens(config: Any, tokens: np.ndarray) -> list[str]:
    """The texts of token rows (n, L) of a text source ("text_files", "tfds_text",
    "python_docs"), decoded with its tokenizer (special ids dropped)."""
    spec = parse_config(config)
    if spec["source"] not in _text.TEXT_SOURCES:
        raise ValueError(
            f"data.source={spec['source']!r} has no tokenizer; decode_tokens reads one of "
            f"{_text.TEXT_SOURCES}."
        )
    return _text.decode_rows(spec, tokens)


def language(config: Any) -> languages.Language:
    """The synthetic language of a "synthetic_text" data config (its exact log-likelihood and
    entropy: `flowjax.data.languages`)."""
    spec = parse_config(config)
    if spec["source"] != "synthetic_text":
        raise ValueError(f"data.source={spec['source']!r} is not a synthetic language.")
    return _language_of(spec)


def _language_of(spec: dict[str, Any]) -> languages.Language:
    settings = dict(
        vocab_size=spec["vocab_size"], seq_len=spec["seq_len"], language_seed=spec["language_seed"]
    )
    if spec["concentration"] is not None:
        settings["concentration"] = spec["concentration"]
    settings.update({"order": spec["order"]} if spec["name"] == "markov" else {})
    settings.update({"noise": spec["noise"]} if spec["name"] == "noisy_copy" else {})
    return languages.make_language(spec["name"], **settings)


__all__ = [
    "SOURCES",
    "TOY_DISTRIBUTIONS",
    "EpochIndexSampler",
    "build_dataset",
    "build_map_dataset",
    "dataset_from_arrays",
    "decode_tokens",
    "event_shape",
    "num_classes",
    "parse_config",
    "vocab_size",
]
