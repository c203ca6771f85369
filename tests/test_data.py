"""Tests for flowjax.data: toy distributions, array / ArrayRecord / TFDS sources, grain state."""

from __future__ import annotations

import io
import math
import time

import grain
import ml_collections
import numpy as np
import pytest

from flowjax import data

TOY = ml_collections.ConfigDict(dict(source="toy", name="checkerboard"))


def take(it, k):
    return [next(it) for _ in range(k)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


# ------------------------------------------------------------------------------------------
# Toy distributions.


@pytest.mark.parametrize("name", data.TOY_DISTRIBUTIONS)
def test_toy_batches_are_a_function_of_seed_and_index(name):
    cfg = dict(source="toy", name=name)
    ds = data.build_map_dataset(cfg, global_batch_size=64, seed=3)
    it = data.build_dataset(cfg, global_batch_size=64, seed=3)
    batches = take(it, 3)
    shape = (64, *data.toy_event_shape(name))
    for i, batch in enumerate(batches):
        expected = data.sample_toy(name, 64, np.random.default_rng([3, i]))
        assert batch["x"].dtype == expected.dtype and batch["x"].shape == expected.shape == shape
        np.testing.assert_array_equal(batch["x"], expected)
        np.testing.assert_array_equal(ds[i]["x"], expected)
    assert not np.array_equal(batches[0]["x"], batches[1]["x"])
    other_seed = next(data.build_dataset(cfg, global_batch_size=64, seed=4))
    assert not np.array_equal(other_seed["x"], batches[0]["x"])
    assert data.event_shape(cfg) == shape[1:] and data.num_classes(cfg) is None


def test_toy_process_slices_concatenate_to_the_global_batch():
    full = take(data.build_dataset(TOY, global_batch_size=32, seed=0), 3)
    halves = [
        take(
            data.build_dataset(TOY, global_batch_size=32, seed=0, process_index=p, process_count=2),
            3,
        )
        for p in range(2)
    ]
    for step in range(3):
        assert halves[0][step]["x"].shape == (16, 2)
        joined = np.concatenate([halves[0][step]["x"], halves[1][step]["x"]])
        np.testing.assert_array_equal(joined, full[step]["x"])


def test_toy_generation_is_fast():
    data.toy_batch("checkerboard", 4096, seed=0, index=0)
    start = time.perf_counter()
    for i in range(50):
        data.toy_batch("checkerboard", 4096, seed=0, index=i)
    per_batch = (time.perf_counter() - start) / 50
    assert per_batch < 5e-3, per_batch  # Typically ~0.2 ms; loose for shared machines.


def test_checkerboard_support_and_uniform_cells():
    n = 64_000
    x = data.toy_batch("checkerboard", n, seed=0, index=0)
    assert np.all(np.asarray(data.in_support("checkerboard", x)))
    cells = np.floor(x).astype(int) + 4  # Unit cells, in {0..7}^2.
    counts = np.zeros((8, 8), int)
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    in_support = ((np.arange(8)[:, None] // 2 + np.arange(8)[None, :] // 2) % 2) == 0
    assert in_support.sum() == 32
    assert np.all(counts[~in_support] == 0)
    expected = n / 32
    assert np.all(np.abs(counts[in_support] - expected) < 5 * math.sqrt(expected)), counts
    # The bottom-left 2x2 square is in the support, its right neighbour is not.
    support = np.asarray(data.in_support("checkerboard", np.array([[-3.0, -3.0], [-1.0, -3.0]])))
    assert support.tolist() == [True, False]
    edges = np.array([[-4.0, -4.0], [4.0, 0.5], [-4.01, -3.0], [0.0, 0.0], [1.99, 1.99]])
    assert np.asarray(data.in_support("checkerboard", edges)).tolist() == [
        True,
        False,
        False,
        True,
        True,
    ]


def test_toy_log_densities_are_normalised():
    assert data.CHECKERBOARD_NLL == pytest.approx(3.4657, abs=1e-4)
    h = 0.02
    grid = np.arange(-6.0, 6.0, h) + h / 2
    xy = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    for name in ("checkerboard", "8gaussians"):
        p = np.exp(np.asarray(data.log_density(name, xy), dtype=np.float64))
        assert p.sum() * h * h == pytest.approx(1.0, abs=2e-3), name
    x = data.toy_batch("checkerboard", 1000, seed=1, index=0)
    np.testing.assert_allclose(
        np.asarray(data.log_density("checkerboard", x)), -math.log(32.0), rtol=1e-6
    )
    assert np.isneginf(np.asarray(data.log_density("checkerboard", np.array([[-1.0, -3.0]])))).all()
    with pytest.raises(ValueError, match="no closed form"):
        data.log_density("moons", x)
    with pytest.raises(ValueError, match="checkerboard"):
        data.in_support("rings", x)


# ------------------------------------------------------------------------------------------
# Iterator state.


def test_iterator_state_restores_the_same_next_batches():
    it = data.build_dataset(TOY, global_batch_size=16, seed=0)
    take(it, 5)
    state = it.get_state()
    expected = take(it, 3)
    resumed = data.build_dataset(TOY, global_batch_size=16, seed=0)
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 3), expected)


def test_iterator_state_through_orbax_checkpoint_manager(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    labels = np.arange(20) % 3

    def make():
        return data.dataset_from_arrays(x, labels, global_batch_size=6, seed=1)

    it = make()
    take(it, 7)  # Crosses two epochs of 20 records.
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = take(it, 4)
    resumed = make()
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.restore(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
    assert_batches_equal(take(resumed, 4), expected)


# ------------------------------------------------------------------------------------------
# Array and ArrayRecord sources.


@pytest.fixture()
def record_files(tmp_path):
    """48 examples whose first coordinate is their id, as .npz and as ArrayRecord."""
    n = 48
    x = np.stack([np.arange(n), np.arange(n) * 10], axis=1).astype(np.float32)
    labels = np.arange(n) % 5
    npz = tmp_path / "toy.npz"
    np.savez(npz, x=x, label=labels)
    rec = data.write_array_record(str(tmp_path / "toy.array_record"), x, labels)
    return {
        "arrays": dict(source="arrays", path=str(npz), x_key="x", label_key="label"),
        "array_record": dict(source="array_record", path=rec),
        "x": x,
        "labels": labels,
    }


@pytest.mark.parametrize("source", ["arrays", "array_record"])
def test_record_sources_cover_every_record_once_per_epoch(record_files, source):
    cfg = record_files[source]
    n, gbs = 48, 8
    assert data.event_shape(cfg) == (2,)
    assert data.num_classes(cfg) == 5
    its = [
        data.build_dataset(cfg, global_batch_size=gbs, seed=5, process_index=p, process_count=2)
        for p in range(2)
    ]
    epochs = []
    for _ in range(2):
        ids = []
        for _ in range(n // gbs):
            per_process = [next(it) for it in its]
            batch_ids = [b["x"][:, 0].astype(int) for b in per_process]
            assert not set(batch_ids[0]) & set(batch_ids[1])  # Disjoint across processes.
            for b, i in zip(per_process, batch_ids, strict=True):
                assert b["x"].shape == (4, 2) and b["x"].dtype == np.float32
                assert b["label"].dtype == np.int32
                np.testing.assert_array_equal(b["label"], record_files["labels"][i])
                np.testing.assert_array_equal(b["x"][:, 1], 10 * i)
            ids.extend(np.concatenate(batch_ids))
        assert sorted(ids) == list(range(n))
        epochs.append(ids)
    assert epochs[0] != epochs[1]  # Reshuffled each epoch.
    # Two processes see exactly the 1-process global batches, split in halves.
    single = data.build_map_dataset(cfg, global_batch_size=gbs, seed=5)
    halves = [
        data.build_map_dataset(cfg, global_batch_size=gbs, seed=5, process_index=p, process_count=2)
        for p in range(2)
    ]
    for step in (0, 5, 6, 13):
        joined = np.concatenate([halves[0][step]["x"], halves[1][step]["x"]])
        np.testing.assert_array_equal(joined, single[step]["x"])


def test_array_record_round_trip_in_order(record_files, tmp_path):
    cfg = dict(record_files["array_record"], shuffle=False)
    ds = data.build_map_dataset(cfg, global_batch_size=16, seed=0)
    got = np.concatenate([ds[i]["x"] for i in range(3)])
    np.testing.assert_array_equal(got, record_files["x"])
    # Records are plain .npy bytes.
    record = data.encode_records(record_files["x"][:1], record_files["labels"][:1])[0]
    loaded = np.load(io.BytesIO(record), allow_pickle=False)
    np.testing.assert_array_equal(loaded["x"], record_files["x"][0])
    # Unlabelled images stored as uint8 come back in [-1, 1].
    images = np.array([[[[0], [255]]], [[[51], [204]]]], dtype=np.uint8)  # (2, 1, 2, 1)
    path = data.write_array_record(str(tmp_path / "img.array_record"), images)
    cfg = dict(source="array_record", path=path, shuffle=False)
    assert data.event_shape(cfg) == (1, 2, 1) and data.num_classes(cfg) is None
    batch = data.build_map_dataset(cfg, global_batch_size=2, seed=0)[0]
    assert set(batch) == {"x"}
    np.testing.assert_allclose(batch["x"], images / 127.5 - 1.0, atol=1e-6)


def test_batches_straddle_epochs_and_finite_epochs_drop_the_remainder():
    sampler = data.EpochIndexSampler(10, 4, seed=0, shuffle=True)
    stream = np.concatenate([sampler.indices(i) for i in range(10)])  # 4 epochs of 10.
    for e in range(4):
        assert sorted(stream[10 * e : 10 * (e + 1)].tolist()) == list(range(10))
    x = np.arange(10, dtype=np.float32)[:, None]
    it = data.dataset_from_arrays(x, global_batch_size=4, seed=0, num_epochs=2)
    assert len(list(it)) == 5  # 20 records -> 5 full batches.
    big = data.dataset_from_arrays(x, global_batch_size=32, seed=0)  # Batch > dataset.
    assert sorted(next(big)["x"][:30, 0].tolist()) == sorted(list(range(10)) * 3)


def test_array_iterator_state_and_random_flip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 3, 4, 1), dtype=np.uint8)
    npz = tmp_path / "img.npz"
    np.savez(npz, image=images)
    cfg = dict(source="arrays", path=str(npz), x_key="image", random_flip=True)
    it = data.build_dataset(cfg, global_batch_size=6, seed=2)
    take(it, 3)
    state = it.get_state()
    expected = take(it, 2)
    resumed = data.build_dataset(cfg, global_batch_size=6, seed=2)
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 2), expected)
    plain = data.build_map_dataset(dict(cfg, random_flip=False), global_batch_size=6, seed=2)
    flipped = data.build_map_dataset(cfg, global_batch_size=6, seed=2)
    n_flipped = 0
    for step in range(4):
        a, b = plain[step]["x"], flipped[step]["x"]
        for u, v in zip(a, b, strict=True):
            same, mirrored = np.array_equal(u, v), np.array_equal(u[:, ::-1], v)
            assert same or mirrored
            n_flipped += int(not same)
    assert 0 < n_flipped < 24


# ------------------------------------------------------------------------------------------
# TFDS, on a dataset built here (no network).


def _tiny_builder_cls():
    tfds = pytest.importorskip("tensorflow_datasets")
    pil = pytest.importorskip("PIL.Image")

    class FlowjaxTestTinyImages(tfds.core.GeneratorBasedBuilder):
        """10 random 4x4 RGB images with 3 classes, stored as PNG in ArrayRecord."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(4, 4, 3)),
                        "label": tfds.features.ClassLabel(num_classes=3),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, image in enumerate(tiny_images()):
                buf = io.BytesIO()
                pil.fromarray(image).save(buf, format="PNG")  # Encoded without TensorFlow.
                yield i, {"image": buf.getvalue(), "label": i % 3}

    return FlowjaxTestTinyImages


def tiny_images():
    return np.random.default_rng(0).integers(0, 256, size=(10, 4, 4, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = _tiny_builder_cls()(data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return data_dir


def test_tfds_source_on_a_locally_built_dataset(tfds_dir):
    cfg = ml_collections.ConfigDict(
        dict(source="tfds", name="flowjax_test_tiny_images", split="train", data_dir=tfds_dir)
    )
    assert data.event_shape(cfg) == (4, 4, 3)
    assert data.num_classes(cfg) == 3
    images = tiny_images()
    index_of = {im.tobytes(): i for i, im in enumerate(images)}
    in_order = data.build_map_dataset(dict(cfg, shuffle=False), global_batch_size=5, seed=0)
    read = []
    for step in range(2):  # TFDS stores the examples in its own (key-hashed) order.
        batch = in_order[step]
        assert batch["x"].dtype == np.float32 and batch["x"].shape == (5, 4, 4, 3)
        assert batch["label"].dtype == np.int32
        raw = (batch["x"] + 1.0) * 127.5
        np.testing.assert_allclose(raw, np.rint(raw), atol=1e-4)  # Exactly u8 / 127.5 - 1.
        for image, label in zip(np.rint(raw).astype(np.uint8), batch["label"], strict=True):
            read.append(index_of[image.tobytes()])
            assert label == read[-1] % 3
    assert sorted(read) == list(range(10))
    # Shuffled, sharded over 2 processes: each epoch still reads every image exactly once.
    seen = []
    for p in range(2):
        it = data.build_dataset(cfg, global_batch_size=10, seed=1, process_index=p, process_count=2)
        batch = next(it)
        assert batch["x"].shape == (5, 4, 4, 3)
        seen.extend(np.rint((batch["x"] + 1.0) * 127.5).astype(np.uint8))
    assert sorted(im.tobytes() for im in seen) == sorted(im.tobytes() for im in images)
    flipped = data.build_map_dataset(dict(cfg, random_flip=True), global_batch_size=10, seed=1)
    plain = data.build_map_dataset(cfg, global_batch_size=10, seed=1)
    a, b = plain[0]["x"], flipped[0]["x"]
    assert all(
        np.array_equal(u, v) or np.array_equal(u[:, ::-1], v) for u, v in zip(a, b, strict=True)
    )


def test_tfds_missing_dataset_raises_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    cfg = dict(source="tfds", name="mnist", data_dir=str(empty))
    with pytest.raises(ValueError, match=r"(?s)'mnist'.*empty_tfds.*tfds build"):
        data.build_dataset(cfg, global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match="does not exist"):
        data.build_dataset(dict(cfg, data_dir=str(tmp_path / "nope")), global_batch_size=8, seed=0)


def test_tfds_unknown_split_lists_the_splits(tfds_dir):
    cfg = dict(source="tfds", name="flowjax_test_tiny_images", split="test", data_dir=tfds_dir)
    with pytest.raises(ValueError, match=r"no split 'test'.*\['train'\]"):
        data.build_dataset(cfg, global_batch_size=2, seed=0)


# ------------------------------------------------------------------------------------------
# Bad configs fail early with a message naming what was expected.


@pytest.mark.parametrize(
    ("cfg", "kwargs", "match"),
    [
        (dict(source="csv"), {}, r"data.source must be one of \('toy', 'arrays'"),
        (dict(source="toy", name="swissroll"), {}, r"Unknown toy.*'checkerboard'"),
        (dict(source="toy"), {}, r"data.name is required"),
        (dict(source="toy", name="moons", shufle=True), {}, r"Unknown key.*'shufle'.*allowed"),
        (
            TOY,
            dict(global_batch_size=10, process_count=3),
            r"divisible by process_count \(3\).*9 or 12",
        ),
        (TOY, dict(global_batch_size=8, process_index=2, process_count=2), r"process_index"),
        (TOY, dict(global_batch_size=8, seed=-1), r"seed"),
        (
            dict(source="arrays", path="/nonexistent/d.npz"),
            {},
            r"/nonexistent/d.npz.*does not exist",
        ),
        (dict(source="array_record", path="/nonexistent/d.array_record"), {}, r"does not exist"),
        (dict(source="array_record", path="/nonexistent/*.array_record"), {}, r"matches no file"),
    ],
)
def test_bad_configs_raise_before_any_work(cfg, kwargs, match):
    kwargs = {"global_batch_size": 8, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        data.build_dataset(cfg, **kwargs)


def test_missing_npz_key_names_the_keys(record_files):
    cfg = dict(record_files["arrays"], x_key="image")
    with pytest.raises(ValueError, match=r"x_key='image'.*\['x', 'label'\]"):
        data.build_dataset(cfg, global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match="x_key='image'"):
        data.event_shape(cfg)


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_and_resume():
    cfg = dict(source="toy", name="moons", worker_count=2)
    reference = data.build_map_dataset(
        dict(source="toy", name="moons"), global_batch_size=64, seed=0
    )
    it = data.build_dataset(cfg, global_batch_size=64, seed=0)
    try:
        for step in range(5):
            np.testing.assert_array_equal(next(it)["x"], reference[step]["x"])
        state = it.get_state()
    finally:
        it.close()
    resumed = data.build_dataset(cfg, global_batch_size=64, seed=0)
    try:
        resumed.set_state(state)
        for step in range(5, 8):
            np.testing.assert_array_equal(next(resumed)["x"], reference[step]["x"])
    finally:
        resumed.close()
