"""Random-access record sources read a batch at a time: in-memory arrays, couplings files,
ArrayRecord, TFDS.

Each reader maps an array of record indices to a dict of stacked NumPy arrays,
{"x": (k, *event_shape) in the stored dtype, "label": (k,) int32 when labelled} (plus other
per-example arrays of its own, e.g. a couplings file's "x_start", "t", "noise_seed"), and is
what the grain pipeline in `flowjax.data.pipeline` gathers its per-process batches from. Readers
open their underlying files lazily and pickle as their arguments only, so they can be shipped
to grain worker processes.

ArrayRecord record format (written by `write_array_record`, read by `ArrayRecordReader`):
one record per example, each the bytes of a NumPy ``.npy`` file (format version 1.0) holding a
0-d structured array with the fields

    "x":     the example, dtype and shape as given to the writer (little-endian), and
    "label": int32, present only for labelled data.

So `numpy.load(io.BytesIO(record))["x"]` reads any record with NumPy alone and no pickle. All
records of a file share the same header, which lets a batch be decoded with one
`numpy.frombuffer`. Files are written with ``group_size:1`` for fast random access.

Couplings (written by `save_couplings`, read by `CouplingsReader`; rectified-coupling
distillation): a .npz file of a teacher's samples with where they started from,

    "x":          int32 (N, L), the teacher's final samples, ids in [0, vocab_size);
    "x_start":    int32 (N, L), the state it started from, ids in [0, vocab_size] (masked
                  positions hold the mask id vocab_size);
    "t":          float32 (N,), the start time in [0, 1] (0 = all masked, 1 = data);
    "noise_seed": uint32 (N,), the seed of the sample's infinite-mask labels (0 without them);
    "vocab_size": a scalar int, the data vocabulary (mask excluded).

TFDS: `TfdsReader` wraps `tensorflow_datasets.data_source`, which reads a dataset prepared
with ``file_format=array_record`` (or parquet) in a local ``data_dir``; nothing is
downloaded. `check_tfds_prepared` gives the clear error used when it is missing.
"""

from __future__ import annotations

import functools
import glob
import io
import os
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

Batch = dict[str, np.ndarray]

ARRAY_RECORD_OPTIONS = "group_size:1"
"""Writer options for `write_array_record`: one record per chunk, for random access."""


class RecordReader(Protocol):
    """A random-access collection of examples, read a batch of indices at a time."""

    def __len__(self) -> int: ...

    @property
    def has_labels(self) -> bool: ...

    def read(self, indices: np.ndarray) -> Batch:
        """{"x": (k, *event), "label": (k,) int32 if labelled, other per-example arrays (k, ...)}
        for the k given indices."""
        ...


# --------------------------------------------------------------------------------------------
# In-memory arrays and .npz / .npy files.


class ArrayReader:
    """Examples held in NumPy arrays (possibly memory-mapped): x[i] with optional labels[i]."""

    def __init__(self, x: np.ndarray, labels: np.ndarray | None = None):
        x = x if isinstance(x, np.memmap) else np.asarray(x)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"Expected a non-empty array of examples (n, ...), got {x.shape}.")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (x.shape[0],):
                raise ValueError(
                    f"labels must have shape ({x.shape[0]},) to match x {x.shape}, got "
                    f"{labels.shape}."
                )
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
            labels = labels.astype(np.int32)
        self.x = x
        self.labels = labels

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def read(self, indices: np.ndarray) -> Batch:
        out = {"x": np.asarray(self.x[indices])}
        if self.labels is not None:
            out["label"] = self.labels[indices]
        return out


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of a .npy stream, leaving it at the start of the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # Version 3.0 (utf-8 field names) has no public reader.
        shape, _, dtype = np.lib.format._read_array_header(f, version)  # noqa: SLF001
    return tuple(shape), np.dtype(dtype)


def _npy_header_from_zip(path: str, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of array `key` in the .npz file `path`, without reading its data."""
    import zipfile

    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
        return _read_npy_header(f)


def array_file_keys(path: str) -> list[str]:
    """The array names stored in a .npz file (["x"] stands for the single array of a .npy)."""
    if path.endswith(".npy"):
        return ["x"]
    with np.load(path, allow_pickle=False) as data:
        return list(data.files)


def check_array_file(path: str, x_key: str, label_key: str | None) -> None:
    """Raises a clear ValueError if `path` is not a .npz/.npy file holding the named arrays."""
    if not (path.endswith(".npz") or path.endswith(".npy")):
        raise ValueError(
            f"data.path must be a .npz or .npy file for source='arrays', got {path!r}."
        )
    if not os.path.isfile(path):
        raise ValueError(
            f"data.path {path!r} does not exist. Expected a .npz file with the array "
            f"{x_key!r}" + (f" and labels {label_key!r}" if label_key else "") + " (or a .npy "
            "file with the examples), e.g. written with numpy.savez(path, x=x, label=labels)."
        )
    if path.endswith(".npy"):
        if label_key is not None:
            raise ValueError(
                f"data.label_key={label_key!r} needs a .npz file; {path!r} is a .npy file "
                "holding only the examples. Set data.label_key=None or save a .npz."
            )
        return
    keys = array_file_keys(path)
    for name, key in (("x_key", x_key), ("label_key", label_key)):
        if key is not None and key not in keys:
            raise ValueError(f"data.{name}={key!r} is not in {path!r}; its arrays are {keys}.")


def array_file_shape(path: str, x_key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the examples array in a .npz/.npy file, read from its header only."""
    if path.endswith(".npy"):
        x = np.load(path, mmap_mode="r")
        return tuple(x.shape), x.dtype
    return _npy_header_from_zip(path, x_key)


def load_array_file(path: str, x_key: str, label_key: str | None) -> ArrayReader:
    """An `ArrayReader` over a .npz file (loaded into memory) or a .npy file (memory-mapped)."""
    if path.endswith(".npy"):
        return ArrayReader(np.load(path, mmap_mode="r"))
    with np.load(path, allow_pickle=False) as data:
        x = data[x_key]
        labels = data[label_key] if label_key is not None else None
    return ArrayReader(x, labels)


class LazyArrayFileReader:
    """`ArrayReader` over a .npz/.npy file, opened on first use (pickles as its arguments)."""

    def __init__(self, path: str, x_key: str, label_key: str | None):
        self.path, self.x_key, self.label_key = path, x_key, label_key
        shape, _ = array_file_shape(path, x_key)
        self._len = int(shape[0])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_reader"}

    @functools.cached_property
    def _reader(self) -> ArrayReader:
        return load_array_file(self.path, self.x_key, self.label_key)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return self.label_key is not None

    def read(self, indices: np.ndarray) -> Batch:
        return self._reader.read(indices)


# --------------------------------------------------------------------------------------------
# Couplings: a teacher's samples with the states they started from.

COUPLING_ARRAYS = ("x", "x_start", "t", "noise_seed")
"""The per-example arrays of a couplings file, each with one row per coupling."""

_COUPLING_KEYS = (*COUPLING_ARRAYS, "vocab_size")
_COUPLINGS_HINT = "; write it with flowjax.train.couplings.write_couplings"


class CouplingsInfo(NamedTuple):
    """What a couplings file holds, read from its headers and its vocab_size only."""

    num_records: int
    seq_len: int
    vocab_size: int


def _couplings_error(where: str, problem: str, hint: str) -> ValueError:
    return ValueError(f"{where}: {problem}{hint}.")


def _check_coupling_layout(
    layout: dict[str, tuple[tuple[int, ...], np.dtype]], where: str, hint: str
) -> tuple[int, int]:
    """Checks the (shape, dtype) of the four per-example arrays; returns (N, L)."""
    shape = tuple(layout["x"][0])
    if len(shape) != 2 or 0 in shape:
        raise _couplings_error(
            where, f"x must be a non-empty (N, L) array, got shape {shape}", hint
        )
    n = shape[0]
    expected = {"x": shape, "x_start": shape, "t": (n,), "noise_seed": (n,)}
    kinds = {"x": np.integer, "x_start": np.integer, "t": np.floating, "noise_seed": np.integer}
    for key in COUPLING_ARRAYS:
        shape_k, dtype_k = layout[key]
        if tuple(shape_k) != expected[key]:
            raise _couplings_error(
                where,
                f"{key} has shape {tuple(shape_k)}, expected {expected[key]} (x is {shape})",
                hint,
            )
        if not np.issubdtype(dtype_k, kinds[key]):
            kind = "an integer" if kinds[key] is np.integer else "a floating-point"
            raise _couplings_error(where, f"{key} must have {kind} dtype, got {dtype_k}", hint)
    return int(shape[0]), int(shape[1])


def _check_coupling_vocab(value: Any, where: str, hint: str) -> int:
    """The vocabulary size (mask excluded) as an int, or a ValueError."""
    v = np.asarray(value)
    if v.shape != () or not np.issubdtype(v.dtype, np.integer) or not 1 <= v < 2**31 - 1:
        raise _couplings_error(
            where,
            f"vocab_size must be a scalar int in [1, 2**31 - 2] (the data vocabulary, mask "
            f"excluded), got {value!r}",
            hint,
        )
    return int(v)


def check_couplings(
    x: Any, x_start: Any, t: Any, noise_seed: Any, vocab_size: Any, where: str, hint: str = ""
) -> tuple[Batch, int]:
    """Checks the arrays of a couplings set; returns them in the stored dtypes and vocab_size.

    Args:
      x: (N, L) integer ids in [0, vocab_size), the teacher's final samples.
      x_start: (N, L) integer ids in [0, vocab_size], the states the teacher started from
        (vocab_size is the mask token).
      t: (N,) floats in [0, 1], the start times (0 = all masked, 1 = data).
      noise_seed: (N,) integers in [0, 2**32), the seeds of the infinite-mask labels.
      vocab_size: the data vocabulary (mask excluded).
      where: what the arrays are, for the messages ("save_couplings", a file).
      hint: appended to each message (what to do).

    Returns:
      ({"x": int32 (N, L), "x_start": int32 (N, L), "t": float32 (N,), "noise_seed":
      uint32 (N,)}, vocab_size).
    """
    arrays = {
        key: np.asarray(value)
        for key, value in zip(COUPLING_ARRAYS, (x, x_start, t, noise_seed), strict=True)
    }
    _check_coupling_layout({k: (a.shape, a.dtype) for k, a in arrays.items()}, where, hint)
    v = _check_coupling_vocab(vocab_size, where, hint)
    for key, high in (("x", v - 1), ("x_start", v)):
        lo, hi = int(arrays[key].min()), int(arrays[key].max())
        if lo < 0 or hi > high:
            raise _couplings_error(
                where,
                f"{key} holds ids in [{lo}, {hi}], outside [0, {high}] for vocab_size={v}"
                + (" (the mask id is vocab_size)" if key == "x_start" else ""),
                hint,
            )
    t_array = arrays["t"]
    if not np.all((t_array >= 0) & (t_array <= 1)):
        raise _couplings_error(
            where,
            f"t must lie in [0, 1] (0 = all masked, 1 = data), got values in "
            f"[{np.min(t_array)}, {np.max(t_array)}]",
            hint,
        )
    seeds = arrays["noise_seed"]
    if int(seeds.min()) < 0 or int(seeds.max()) > np.iinfo(np.uint32).max:
        raise _couplings_error(
            where,
            f"noise_seed must lie in [0, 2**32), got values in [{seeds.min()}, {seeds.max()}]",
            hint,
        )
    dtypes = {"x": np.int32, "x_start": np.int32, "t": np.float32, "noise_seed": np.uint32}
    return {key: arrays[key].astype(dtypes[key]) for key in COUPLING_ARRAYS}, v


def _open_couplings_file(path: str) -> None:
    """Checks that `path` is an existing .npz file holding all the arrays of couplings."""
    if not path.endswith(".npz"):
        raise ValueError(
            f"data.path must be a .npz file for source='couplings', got {path!r}{_COUPLINGS_HINT}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"data.path {path!r} does not exist; expected a couplings .npz file with the arrays "
            f"{list(_COUPLING_KEYS)}{_COUPLINGS_HINT}."
        )
    keys = array_file_keys(path)
    missing = [key for key in _COUPLING_KEYS if key not in keys]
    if missing:
        raise _couplings_error(
            f"Couplings file {path!r}",
            f"missing array(s) {missing} (it has {keys}; expected {list(_COUPLING_KEYS)})",
            _COUPLINGS_HINT,
        )


def couplings_info(path: str) -> CouplingsInfo:
    """(num_records, seq_len, vocab_size) of a couplings file, reading only its headers and
    vocab_size; raises as `load_couplings` does for a missing file, key or a bad shape."""
    _open_couplings_file(path)
    where = f"Couplings file {path!r}"
    layout = {key: _npy_header_from_zip(path, key) for key in COUPLING_ARRAYS}
    n, seq_len = _check_coupling_layout(layout, where, _COUPLINGS_HINT)
    with np.load(path, allow_pickle=False) as data:
        v = _check_coupling_vocab(data["vocab_size"], where, _COUPLINGS_HINT)
    return CouplingsInfo(n, seq_len, v)


def load_couplings(path: str) -> tuple[Batch, int]:
    """The checked arrays and vocab_size of a couplings file (see `check_couplings`)."""
    _open_couplings_file(path)
    with np.load(path, allow_pickle=False) as data:
        values = [data[key] for key in _COUPLING_KEYS]
    return check_couplings(*values, where=f"Couplings file {path!r}", hint=_COUPLINGS_HINT)


def save_couplings(
    path: str,
    x: np.ndarray,
    x_start: np.ndarray,
    t: np.ndarray,
    noise_seed: np.ndarray,
    vocab_size: int,
) -> str:
    """Writes a couplings file for `source="couplings"`: a teacher's samples and their starts.

    Args:
      path: the .npz file to write (parent directories are created).
      x: (N, L) ids in [0, vocab_size), the teacher's final samples (the training targets).
      x_start: (N, L) ids in [0, vocab_size], the state the teacher started from (masked
        positions hold the mask id vocab_size).
      t: (N,) start times in [0, 1] (0 = all masked, 1 = data).
      noise_seed: (N,) seeds in [0, 2**32) of each sample's infinite-mask labels (0 for a
        model without them).
      vocab_size: the data vocabulary, mask excluded.

    Returns:
      `path`. The arrays are stored as int32, int32, float32, uint32 and a scalar int64.

    Raises:
      ValueError: for a path not ending in .npz, shapes that disagree, or ids, times or seeds
        out of range (nothing is written then).
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"save_couplings: path must end with .npz, got {path!r}.")
    arrays, v = check_couplings(x, x_start, t, noise_seed, vocab_size, where="save_couplings")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays, vocab_size=np.int64(v))
    return path


class CouplingsReader:
    """A couplings file as a record source: loaded and checked on construction, pickled as its
    path and reloaded on first use in a worker."""

    def __init__(self, path: str):
        self.path = path
        self._len = int(self._arrays[0]["x"].shape[0])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_arrays"}

    @functools.cached_property
    def _arrays(self) -> tuple[Batch, int]:
        return load_couplings(self.path)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        """{"x": int32 (k, L), "x_start": int32 (k, L), "t": float32 (k,), "noise_seed":
        uint32 (k,)} for the k given indices."""
        arrays = self._arrays[0]
        return {key: arrays[key][indices] for key in COUPLING_ARRAYS}


# --------------------------------------------------------------------------------------------
# ArrayRecord.


def _record_dtype(x_dtype: np.dtype, event_shape: tuple[int, ...], labelled: bool) -> np.dtype:
    fields: list[tuple[Any, ...]] = [("x", np.dtype(x_dtype).newbyteorder("<"), event_shape)]
    if labelled:
        fields.append(("label", np.dtype("<i4")))
    return np.dtype(fields)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def encode_records(x: np.ndarray, labels: np.ndarray | None = None) -> list[bytes]:
    """Serialises examples x[i] (and labels[i]) into the record format of this module."""
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"Expected a non-empty array of examples (n, ...), got {x.shape}.")
    if x.dtype.hasobject:
        raise ValueError(f"Examples must have a numeric dtype, got {x.dtype}.")
    labelled = labels is not None
    dtype = _record_dtype(x.dtype, tuple(x.shape[1:]), labelled)
    table = np.empty((x.shape[0],), dtype)
    table["x"] = x
    if labelled:
        labels = np.asarray(labels)
        if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be integers of shape ({x.shape[0]},), got {labels.dtype} "
                f"{labels.shape}."
            )
        table["label"] = labels
    first = _npy_bytes(table[0])  # A 0-d structured array: header + one item.
    header = first[: len(first) - dtype.itemsize]
    return [header + table[i : i + 1].tobytes() for i in range(table.shape[0])]


def decode_records(records: Sequence[bytes]) -> Batch:
    """Decodes records written by `encode_records` into {"x": ..., "label": ...} arrays."""
    if not records:
        raise ValueError("decode_records needs at least one record.")
    stream = io.BytesIO(records[0])
    try:
        shape, dtype = _read_npy_header(stream)
    except ValueError as e:
        raise ValueError(
            "Not a flowjax array record (expected the bytes of a .npy file holding a 0-d "
            "structured array with a field 'x'; write files with write_array_record)."
        ) from e
    if shape != () or dtype.names is None or "x" not in dtype.names:
        raise ValueError(
            f"Not a flowjax array record: expected a 0-d structured array with a field 'x', "
            f"got shape {shape} dtype {dtype}."
        )
    offset = stream.tell()
    header = records[0][:offset]
    size = offset + dtype.itemsize
    for r in records:
        if len(r) != size or r[:offset] != header:
            raise ValueError("All records of an ArrayRecord source must share dtype and shape.")
    table = np.frombuffer(b"".join(r[offset:] for r in records), dtype=dtype)
    out = {"x": np.ascontiguousarray(table["x"])}
    if "label" in dtype.names:
        out["label"] = table["label"].astype(np.int32)
    return out


def write_array_record(path: str, x: np.ndarray, labels: np.ndarray | None = None) -> str:
    """Writes examples x (n, *event) and optional integer labels (n,) to an ArrayRecord file.

    The file can then be used with `build_dataset` and `{"source": "array_record",
    "path": path}`. See the module docstring for the record format. Returns `path`.
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    records = encode_records(x, labels)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    writer = ArrayRecordWriter(os.fspath(path), ARRAY_RECORD_OPTIONS)
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()
    return path


def resolve_paths(path: str | Sequence[str]) -> list[str]:
    """Expands a path, a glob pattern or a list of them into existing files (sorted globs)."""
    if path is None or path == "":
        raise ValueError(
            "data.path is not set: give the ArrayRecord file, glob or list to read (e.g. "
            "--config.data.path='DIR/latents-*-of-*.array_record')."
        )
    patterns = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not patterns:
        raise ValueError("data.path is empty; expected an ArrayRecord file, glob or list.")
    files: list[str] = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ValueError(f"data.path pattern {pattern!r} matches no file.")
            files.extend(matches)
        elif os.path.isfile(pattern):
            files.append(pattern)
        else:
            raise ValueError(
                f"data.path {pattern!r} does not exist. Expected an ArrayRecord file written "
                "with flowjax.data.write_array_record(path, x, labels)."
            )
    return files


class ArrayRecordReader:
    """Examples stored with `write_array_record` in one or more ArrayRecord files."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        first = self._source.__getitems__([0])
        self._first = decode_records(first)
        self._len = len(self._source)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_source"}

    @functools.cached_property
    def _source(self) -> Any:
        import grain

        return grain.sources.ArrayRecordDataSource(self.paths)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return "label" in self._first

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self._first["x"].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._first["x"].dtype

    def read(self, indices: np.ndarray) -> Batch:
        # Reading in file order is markedly faster; the batch is put back in the asked order.
        indices = np.asarray(indices)
        order = np.argsort(indices, kind="stable")
        batch = decode_records(self._source.__getitems__(indices[order].tolist()))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        return {key: value[inverse] for key, value in batch.items()}

    def max_label(self, chunk: int = 65536) -> int:
        """The largest label in the files (reads every record; -1 if unlabelled)."""
        if not self.has_labels:
            return -1
        best = -1
        for start in range(0, len(self), chunk):
            labels = self.read(np.arange(start, min(start + chunk, len(self))))["label"]
            best = max(best, int(labels.max()))
        return best


# --------------------------------------------------------------------------------------------
# TFDS.


def tfds_builder(name: str, data_dir: str | None) -> Any:
    """The TFDS builder for a locally prepared dataset, or a ValueError saying what to do."""
    import tensorflow_datasets as tfds

    if data_dir is not None and not os.path.isdir(data_dir):
        raise ValueError(
            f"data.data_dir {data_dir!r} does not exist. Expected a TFDS data directory "
            f"holding {name!r}: datasets cannot be downloaded on these machines; run "
            f"`tfds build {name} --file_format=array_record --data_dir=DIR` where there is "
            "network access and copy DIR here."
        )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends, re-raised with the fix.
        raise ValueError(
            f"TFDS dataset {name!r} was not found (data_dir={data_dir!r}): it is neither in "
            "the TFDS catalogue nor prepared in that directory. Check data.name, or prepare "
            f"it with `tfds build {name} --file_format=array_record --data_dir=DIR` on a "
            "machine with network access and copy DIR here."
        ) from e
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in data_dir {str(builder.data_dir)!r} "
            f"(data.data_dir={data_dir!r}). It cannot be downloaded on these machines: run "
            f"`tfds build {name} --file_format=array_record --data_dir=DIR` (or "
            "download_and_prepare with file_format='array_record') where there is network "
            "access, copy DIR here and set data.data_dir=DIR."
        )
    file_format = str(getattr(builder.info, "file_format", "") or "")
    if file_format and not any(f in file_format.lower() for f in ("array_record", "parquet")):
        raise ValueError(
            f"TFDS dataset {name!r} in {str(builder.data_dir)!r} is stored as {file_format}, "
            "which has no random access. Rebuild it with "
            f"`tfds build {name} --file_format=array_record`."
        )
    return builder


def check_tfds_split(builder: Any, split: str) -> None:
    """Raises a ValueError listing the available splits if the base of `split` is unknown."""
    base = split.split("[")[0].split("+")[0]
    available = list(builder.info.splits.keys())
    if base not in available:
        raise ValueError(
            f"TFDS dataset {builder.info.name!r} has no split {split!r}; available: {available}."
        )


def tfds_event_shape(builder: Any, image_key: str) -> tuple[int, ...]:
    """The fixed shape of feature `image_key`, or a ValueError if it is missing or variable."""
    features = builder.info.features
    if image_key not in features:
        raise ValueError(
            f"data.image_key={image_key!r} is not a feature of TFDS dataset "
            f"{builder.info.name!r}; its features are {list(features.keys())}."
        )
    shape = tuple(features[image_key].shape)
    if any(d is None for d in shape):
        raise ValueError(
            f"Feature {image_key!r} of TFDS dataset {builder.info.name!r} has a variable "
            f"shape {shape}; use a fixed-size variant (e.g. a '/64x64' config)."
        )
    return tuple(int(d) for d in shape)


def tfds_num_classes(builder: Any, label_key: str | None) -> int | None:
    """`num_classes` of the ClassLabel feature `label_key` (None for no label key)."""
    if label_key is None:
        return None
    features = builder.info.features
    if label_key not in features:
        raise ValueError(
            f"data.label_key={label_key!r} is not a feature of TFDS dataset "
            f"{builder.info.name!r}; its features are {list(features.keys())}. "
            "Set data.label_key=None for unlabelled data."
        )
    n = getattr(features[label_key], "num_classes", None)
    if n is None:
        raise ValueError(
            f"Feature {label_key!r} of TFDS dataset {builder.info.name!r} is not a ClassLabel."
        )
    return int(n)


class TfdsReader:
    """A TFDS split prepared locally, read through `tensorflow_datasets.data_source`."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None,
        image_key: str = "image",
        label_key: str | None = "label",
    ):
        self.name, self.split, self.data_dir = name, split, data_dir
        self.image_key, self.label_key = image_key, label_key
        self._len = len(self._source)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_source"}

    @functools.cached_property
    def _source(self) -> Any:
        import tensorflow_datasets as tfds

        return tfds.data_source(self.name, split=self.split, data_dir=self.data_dir, download=False)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return self.label_key is not None

    def read(self, indices: np.ndarray) -> Batch:
        examples = self._source.__getitems__([int(i) for i in indices])
        out = {"x": np.stack([np.asarray(e[self.image_key]) for e in examples])}
        if self.label_key is not None:
            out["label"] = np.asarray([e[self.label_key] for e in examples], dtype=np.int32)
        return out
