"""Tests for the "couplings" data source: save_couplings, its checks, and its batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from flowjax import data
from flowjax.data.sources import CouplingsReader

N, L, V = 12, 5, 7


def make_couplings(n: int = N, seq_len: int = L, vocab: int = V) -> dict[str, np.ndarray]:
    """Couplings whose rows are distinguishable: x[i, 0] = i % vocab, t[i] = i / n, seed = i."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab, (n, seq_len)).astype(np.int32)
    x[:, 0] = np.arange(n) % vocab
    t = (np.arange(n) / n).astype(np.float32)
    keep = rng.random((n, seq_len)) < t[:, None]
    x_start = np.where(keep, x, vocab).astype(np.int32)
    noise_seed = np.arange(n, dtype=np.uint32) * 1000 + 7
    return dict(x=x, x_start=x_start, t=t, noise_seed=noise_seed)


@pytest.fixture
def couplings_file(tmp_path):
    arrays = make_couplings()
    path = data.save_couplings(str(tmp_path / "couplings.npz"), **arrays, vocab_size=V)
    return path, arrays


def config(path: str, **kwargs) -> dict:
    return dict(source="couplings", path=path, **kwargs)


def take(it, k: int) -> list[dict[str, np.ndarray]]:
    return [next(it) for _ in range(k)]


def concat(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def test_save_couplings_writes_the_arrays(couplings_file):
    path, arrays = couplings_file
    with np.load(path) as stored:
        assert sorted(stored.files) == ["noise_seed", "t", "vocab_size", "x", "x_start"]
        for key, value in arrays.items():
            assert stored[key].dtype == value.dtype
            np.testing.assert_array_equal(stored[key], value)
        assert int(stored["vocab_size"]) == V


def test_one_epoch_in_order_is_the_file(couplings_file):
    path, arrays = couplings_file
    it = data.build_dataset(config(path, shuffle=False), global_batch_size=4, seed=0)
    batches = take(it, N // 4)
    first = batches[0]
    assert sorted(first) == ["noise_seed", "t", "x", "x_start"]
    assert first["x"].dtype == np.int32 and first["x"].shape == (4, L)
    assert first["x_start"].dtype == np.int32 and first["x_start"].shape == (4, L)
    assert first["t"].dtype == np.float32 and first["t"].shape == (4,)
    assert first["noise_seed"].dtype == np.uint32 and first["noise_seed"].shape == (4,)
    epoch = concat(batches)
    for key, value in arrays.items():
        np.testing.assert_array_equal(epoch[key], value)
    np.testing.assert_array_equal(next(it)["x"], arrays["x"][:4])  # the next epoch


def test_one_shuffled_epoch_is_a_permutation_of_consistent_rows(couplings_file):
    path, arrays = couplings_file
    it = data.build_dataset(config(path), global_batch_size=4, seed=0)
    epoch = concat(take(it, N // 4))
    records = (epoch["noise_seed"] - 7) // 1000  # the record index of each row
    assert sorted(records.tolist()) == list(range(N))
    assert records.tolist() != list(range(N))
    for key, value in arrays.items():
        np.testing.assert_array_equal(epoch[key], value[records])


def test_two_processes_give_the_halves_of_each_global_batch(couplings_file):
    path, _ = couplings_file
    full = take(data.build_dataset(config(path), global_batch_size=4, seed=0), 5)
    halves = [
        take(
            data.build_dataset(
                config(path), global_batch_size=4, seed=0, process_index=p, process_count=2
            ),
            5,
        )
        for p in range(2)
    ]
    for i, batch in enumerate(full):
        for key, value in batch.items():
            assert halves[0][i][key].shape[0] == 2
            np.testing.assert_array_equal(
                np.concatenate([halves[0][i][key], halves[1][i][key]]), value
            )


def test_iterator_state_resumes_at_the_next_batch(couplings_file):
    path, _ = couplings_file
    it = data.build_dataset(config(path), global_batch_size=4, seed=0)
    take(it, 4)  # past the first epoch
    state = it.get_state()
    expected = take(it, 3)
    resumed = data.build_dataset(config(path), global_batch_size=4, seed=0)
    resumed.set_state(state)
    for a, b in zip(take(resumed, 3), expected, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_finite_epochs_stop(couplings_file):
    path, _ = couplings_file
    it = data.build_dataset(config(path, num_epochs=1), global_batch_size=4, seed=0)
    assert len(list(it)) == N // 4


def test_metadata(couplings_file):
    path, _ = couplings_file
    assert data.event_shape(config(path)) == (L,)
    assert data.vocab_size(config(path)) == V
    assert data.num_classes(config(path)) is None


def bad(**changes) -> dict:
    arrays: dict = {**make_couplings(), "vocab_size": V}
    arrays.update(changes)
    return arrays


BAD_INPUTS = [
    (bad(x_start=np.zeros((N, L + 1), np.int32)), r"x_start has shape \(12, 6\), expected"),
    (bad(t=np.zeros((N, 1), np.float32)), r"t has shape \(12, 1\), expected \(12,\)"),
    (bad(noise_seed=np.zeros(N - 1, np.uint32)), r"noise_seed has shape \(11,\), expected"),
    (bad(x=np.full((N, L), V, np.int32)), r"x holds ids in \[7, 7\], outside \[0, 6\]"),
    (bad(x=np.full((N, L), -1, np.int32)), r"x holds ids in \[-1, -1\], outside \[0, 6\]"),
    (bad(x_start=np.full((N, L), V + 1, np.int32)), r"x_start holds ids .* outside \[0, 7\]"),
    (bad(t=np.full(N, 1.5, np.float32)), r"t must lie in \[0, 1\]"),
    (bad(t=np.full(N, np.nan, np.float32)), r"t must lie in \[0, 1\]"),
    (bad(x=np.zeros((N, L), np.float32)), r"x must have an integer dtype"),
    (bad(noise_seed=np.full(N, -1, np.int64)), r"noise_seed must lie in \[0, 2\*\*32\)"),
    (bad(vocab_size=0), r"vocab_size must be a scalar int"),
]


@pytest.mark.parametrize("arrays,match", BAD_INPUTS)
def test_save_couplings_rejects_bad_arrays(tmp_path, arrays, match):
    path = tmp_path / "c.npz"
    with pytest.raises(ValueError, match="save_couplings: " + match):
        data.save_couplings(str(path), **arrays)
    assert not path.exists()


@pytest.mark.parametrize("arrays,match", BAD_INPUTS)
def test_bad_files_raise_before_any_batch(tmp_path, arrays, match):
    path = str(tmp_path / "c.npz")
    np.savez(path, **arrays)
    hint = r".*write it with flowjax\.train\.couplings\.write_couplings"
    with pytest.raises(ValueError, match="Couplings file .*" + match + hint):
        data.build_dataset(config(path), global_batch_size=4, seed=0)


def test_bad_shapes_raise_from_metadata_too(tmp_path):
    path = str(tmp_path / "c.npz")
    np.savez(path, **bad(t=np.zeros((N, 1), np.float32)))
    for fn in (data.event_shape, data.vocab_size):
        with pytest.raises(ValueError, match=r"t has shape \(12, 1\)"):
            fn(config(path))


def test_missing_file_and_keys(tmp_path):
    missing = str(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError, match=r"does not exist.*write_couplings"):
        data.build_dataset(config(missing), global_batch_size=4, seed=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.event_shape(config(missing))
    path = str(tmp_path / "partial.npz")
    arrays = make_couplings()
    np.savez(path, x=arrays["x"], x_start=arrays["x_start"])
    with pytest.raises(
        ValueError, match=r"missing array\(s\) \['t', 'noise_seed', 'vocab_size'\].*write_couplings"
    ):
        data.build_dataset(config(path), global_batch_size=4, seed=0)
    with pytest.raises(ValueError, match=r"must be a \.npz file"):
        data.build_dataset(config(str(tmp_path / "c.npy")), global_batch_size=4, seed=0)
    with pytest.raises(ValueError, match=r"path must end with \.npz"):
        data.save_couplings(str(tmp_path / "c"), **arrays, vocab_size=V)


def test_unknown_config_key_is_named(couplings_file):
    path, _ = couplings_file
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['random_flip'\]"):
        data.build_dataset(config(path, random_flip=True), global_batch_size=4, seed=0)


def test_reader_pickles_as_its_path(couplings_file):
    path, arrays = couplings_file
    reader = CouplingsReader(path)
    state = reader.__getstate__()
    assert "_arrays" not in state and state["path"] == path
    copy = pickle.loads(pickle.dumps(reader))
    batch = copy.read(np.array([3, 1]))
    for key, value in arrays.items():
        np.testing.assert_array_equal(batch[key], value[[3, 1]])
