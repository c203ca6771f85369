"""Tests for flowjax.data.pointclouds and the "point_clouds" source of the data pipeline:
the shapes' exact geometry and area-uniform sampling, Set-MultiMNIST's coordinates and masks,
ShapeNet's PointFlow normalisation on a small fake PC15k directory, and the batch contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowjax import data
from flowjax.data import pointclouds as pc

SHAPES = dict(source="point_clouds", name="shapes", num_points=64)


def take(it, k):
    return [next(it) for _ in range(k)]


# ------------------------------------------------------------------------------------------
# "shapes"


def test_shapes_families_have_their_exact_geometry():
    major, minor = pc.TORUS_RADII
    for i in range(9):
        x, label, scale = data.shapes_record("train", i, 2048)
        assert x.shape == (2048, 3) and x.dtype == np.float32
        assert label == i % 3 and 0.6 <= scale <= 1.2
        p = x.astype(np.float64)
        if label == 0:  # sphere of radius `scale` about the origin
            np.testing.assert_allclose(np.linalg.norm(p, axis=1), scale, atol=1e-5)
        elif label == 1:  # cube surface: one coordinate at +-scale, the others inside
            np.testing.assert_allclose(np.abs(p).max(axis=1), scale, atol=1e-6)
            assert np.abs(p).max() <= scale + 1e-6
        else:  # torus (sqrt(x^2 + y^2) - R s)^2 + z^2 = (r s)^2
            ring = np.hypot(p[:, 0], p[:, 1]) - major * scale
            np.testing.assert_allclose(ring**2 + p[:, 2] ** 2, (minor * scale) ** 2, atol=1e-5)
    scales = [data.shapes_record("train", i, 4)[2] for i in range(30)]
    assert len(set(scales)) == 30  # a scale of its own per set


def test_surfaces_are_sampled_uniformly_in_area():
    n = 20000
    sphere = data.sample_surface("sphere", n, np.random.default_rng(0), scale=2.0)
    # A cap above z = r/2 holds (1 - 1/2) / 2 = 1/4 of the sphere's area.
    assert abs(np.mean(sphere[:, 2] > 1.0) - 0.25) < 0.015
    cube = data.sample_surface("cube", n, np.random.default_rng(1))
    axis = np.argmax(np.abs(cube), axis=1)
    faces = axis * 2 + (cube[np.arange(n), axis] > 0)
    np.testing.assert_allclose(np.bincount(faces, minlength=6) / n, 1 / 6, atol=0.012)
    torus = data.sample_surface("torus", n, np.random.default_rng(2))
    major, minor = pc.TORUS_RADII
    # The outer half (cos v > 0) has area fraction 1/2 + r / (pi R); uniform angles give 1/2.
    outer = np.mean(np.hypot(torus[:, 0], torus[:, 1]) > major)
    assert abs(outer - (0.5 + minor / (math.pi * major))) < 0.015
    for points in (sphere, cube, torus):
        assert np.abs(points.mean(axis=0)).max() < 0.05  # centred at the origin
    with pytest.raises(ValueError, match="sphere"):
        data.sample_surface("cone", 4, np.random.default_rng(0))


def test_shapes_records_are_pure_functions_of_split_and_index():
    a, b = data.shapes_record("train", 7, 256), data.shapes_record("train", 7, 256)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], data.shapes_record("test", 7, 256)[0])
    assert not np.array_equal(a[0], data.shapes_record("train", 10, 256)[0])  # same family
    assert len(pc.ShapesReader("train")) == 3000 and len(pc.ShapesReader("test")) == 600
    with pytest.raises(IndexError):
        data.shapes_record("test", 600, 4)


def test_shapes_pipeline_batches_keys_processes_and_resume():
    it = data.build_dataset(SHAPES, global_batch_size=8, seed=0)
    batches = take(it, 3)
    batch = batches[0]
    assert set(batch) == {"x", "mask", "label"}
    assert batch["x"].shape == (8, 64, 3) and batch["x"].dtype == np.float32
    assert batch["mask"].shape == (8, 64) and batch["mask"].dtype == np.bool_
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
    assert batch["mask"].all()
    records = data.EpochIndexSampler(3000, 8, 0, True).indices(0)
    for row, record in enumerate(records):
        x, label, _ = data.shapes_record("train", int(record), 64)
        np.testing.assert_array_equal(batch["x"][row], x)
        assert batch["label"][row] == label == record % 3
    halves = [
        take(data.build_dataset(SHAPES, global_batch_size=8, seed=0, process_index=p,
                                process_count=2), 3)
        for p in range(2)
    ]
    for step in range(3):
        for key in batch:
            joined = np.concatenate([halves[0][step][key], halves[1][step][key]])
            np.testing.assert_array_equal(joined, batches[step][key])
    resumed = data.build_dataset(SHAPES, global_batch_size=8, seed=0)
    resumed.set_state({"next_index": 2})
    np.testing.assert_array_equal(next(resumed)["x"], batches[2]["x"])


def test_event_shape_and_num_classes_read_no_data(tmp_path):
    assert data.event_shape(SHAPES) == (64, 3) and data.num_classes(SHAPES) == 3
    assert data.event_shape(dict(source="point_clouds", name="shapes")) == (2048, 3)
    mnist = dict(source="point_clouds", name="set_multimnist")
    assert data.event_shape(mnist) == (600, 2) and data.num_classes(mnist) is None
    shapenet = dict(source="point_clouds", name="shapenet", path=str(tmp_path / "absent"))
    assert data.event_shape(shapenet) == (2048, 3) and data.num_classes(shapenet) is None
    assert data.parse_config(dict(shapenet, categories=["chair"]))["categories"] == ("chair",)


@pytest.mark.parametrize(
    "cfg, match",
    [
        (dict(name="spheres"), "not a point-cloud set"),
        (dict(name="shapes", num_points=0), "num_points"),
        (dict(name="shapes", num_points=-3), "num_points"),
        (dict(name="shapes", num_points=2.5), "num_points"),
        (dict(name="shapes", num_points=True), "num_points"),
        (dict(name="shapenet", num_points=20000), "15000"),
        (dict(name="shapes", split="val"), "not a split"),
        (dict(name="set_multimnist", path="/data"), "path applies to name='shapenet'"),
        (dict(name="shapes", categories=("chair",)), "categories applies"),
        (dict(name="shapenet", categories=("spaceship",)), "Unknown ShapeNet category"),
        (dict(name="shapenet", categories=("car", "car")), "twice"),
        (dict(name="shapes", points=3), "Unknown key"),
        (dict(), "data.name is required"),
    ],
)
def test_bad_point_cloud_configs_raise_from_parse_config(cfg, match):
    with pytest.raises(ValueError, match=match):
        data.parse_config(dict(source="point_clouds", **cfg))


# ------------------------------------------------------------------------------------------
# "set_multimnist"


def test_set_multimnist_points_masks_and_determinism():
    for i in range(40):
        x, mask = data.set_multimnist_record("test", i)
        assert x.shape == (600, 2) and x.dtype == np.float32 and mask.dtype == np.bool_
        count = int(mask.sum())
        assert 0 < count <= 600
        np.testing.assert_array_equal(mask, np.arange(600) < count)  # real points first
        assert (x[mask] >= 0).all() and (x[mask] < 1).all()
        np.testing.assert_array_equal(x[~mask], 0)
        # The points are exactly the jittered canvas pixels above 8, one per pixel.
        canvas, _ = pc.multimnist_canvas("test", i)
        pixels = np.floor(x[mask].astype(np.float64) * 64).astype(int)
        assert count == int((canvas > 8).sum())
        assert len({tuple(p) for p in pixels}) == count
        assert (canvas[pixels[:, 0], pixels[:, 1]] > 8).all()
        # One digit (24 columns wide) in each 32-column half of the canvas.
        assert (pixels[:, 1] < 32).any() and (pixels[:, 1] >= 32).any()
    again = data.set_multimnist_record("test", 3)
    np.testing.assert_array_equal(again[0], data.set_multimnist_record("test", 3)[0])
    assert not np.array_equal(again[0], data.set_multimnist_record("train", 3)[0])
    # Fewer slots than points: the first N of the same random order, all real.
    few, few_mask = data.set_multimnist_record("test", 3, num_points=100)
    assert few_mask.all()
    np.testing.assert_array_equal(few, again[0][:100])
    assert len(pc.SetMultiMNISTReader("train")) == 10000
    assert len(pc.SetMultiMNISTReader("test")) == 2000


def test_set_multimnist_pipeline_batches():
    cfg = dict(source="point_clouds", name="set_multimnist", split="test")
    batch = next(data.build_dataset(cfg, global_batch_size=4, seed=1))
    assert set(batch) == {"x", "mask"}
    assert batch["x"].shape == (4, 600, 2) and batch["x"].dtype == np.float32
    assert batch["mask"].shape == (4, 600) and batch["mask"].dtype == np.bool_
    records = data.EpochIndexSampler(2000, 4, 1, True).indices(0)
    for row, record in enumerate(records):
        x, mask = data.set_multimnist_record("test", int(record))
        np.testing.assert_array_equal(batch["x"][row], x)
        np.testing.assert_array_equal(batch["mask"][row], mask)


# ------------------------------------------------------------------------------------------
# "shapenet" on a fake ShapeNetCore.v2.PC15k directory


AIRPLANE, CHAIR = "02691156", "03001627"


@pytest.fixture(scope="module")
def shapenet_dir(tmp_path_factory):
    """Two categories with train / val / test models of 15,000 random points each (the
    categories differ in offset and spread, so the normalisation is not the identity)."""
    root = tmp_path_factory.mktemp("ShapeNetCore.v2.PC15k")
    rng = np.random.default_rng(0)
    counts = {"train": (3, 2), "val": (1, 1), "test": (2, 1)}
    for split, (planes, chairs) in counts.items():
        for synset, count, offset, spread in ((AIRPLANE, planes, (0.1, -0.2, 0.3), 0.4),
                                              (CHAIR, chairs, (-0.3, 0.2, 0.0), 0.7)):
            folder = root / synset / split
            folder.mkdir(parents=True)
            for k in range(count):
                points = rng.normal(offset, spread, (pc.SHAPENET_POINTS, 3)).astype(np.float32)
                np.save(folder / f"model{k:02d}.npy", points)
            (folder / "notes.txt").write_text("not a model")
    return root


def _files(root, split, synsets=(AIRPLANE, CHAIR)):
    return [p for s in synsets for p in sorted((root / s / split).glob("*.npy"))]


def test_shapenet_normalisation_is_pointflows_global_one(shapenet_dir):
    points = np.stack([np.load(f) for f in _files(shapenet_dir, "train")]).astype(np.float64)
    mean = points.reshape(-1, 3).mean(axis=0)
    std = points.reshape(-1).std()  # one scalar over all coordinates pooled
    got_mean, got_std = data.shapenet_statistics(str(shapenet_dir), ("airplane", "chair"))
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=1e-12)
    assert got_std == pytest.approx(std, rel=1e-12)
    planes = np.stack([np.load(f) for f in _files(shapenet_dir, "train", (AIRPLANE,))])
    planes = planes.astype(np.float64)
    plane_mean, plane_std = data.shapenet_statistics(str(shapenet_dir), "airplane")
    np.testing.assert_allclose(plane_mean, planes.reshape(-1, 3).mean(0), rtol=0, atol=1e-12)
    assert plane_std == pytest.approx(planes.reshape(-1).std(), rel=1e-12)
    # All 15,000 points of every training model: the normalised points have mean 0 per axis.
    full = pc.ShapeNetReader(str(shapenet_dir), ("airplane", "chair"), "train", 15000)
    normalised = full.read(np.arange(len(full)))["x"].astype(np.float64)
    np.testing.assert_allclose(normalised.reshape(-1, 3).mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(np.sort(normalised[0, :, 0]),
                               np.sort((points[0, :, 0] - mean[0]) / std), atol=1e-6)
    # The test split is normalised with the training statistics.
    test_reader = pc.ShapeNetReader(str(shapenet_dir), ("airplane", "chair"), "test", 64)
    np.testing.assert_array_equal(test_reader.mean, got_mean)
    assert test_reader.std == got_std and len(test_reader) == 3
    test_files = _files(shapenet_dir, "test")
    for i, file in enumerate(test_files):
        x = test_reader.record(i)
        assert x.shape == (64, 3) and x.dtype == np.float32
        raw = np.load(file).astype(np.float64)
        back = x.astype(np.float64) * std + mean
        # Every point is a distinct point of record i's model (no replacement).
        distance = np.linalg.norm(back[:, None, :] - raw[None, :, :], axis=-1)
        nearest = distance.argmin(axis=1)
        assert distance.min(axis=1).max() < 1e-5 and len(set(nearest)) == 64
        np.testing.assert_allclose(x, (raw[nearest] - mean) / std, atol=1e-6)
    again = pc.ShapeNetReader(str(shapenet_dir), ("airplane", "chair"), "test", 64)
    np.testing.assert_array_equal(again.read(np.arange(3))["x"],
                                  test_reader.read(np.arange(3))["x"])


def test_shapenet_pipeline_covers_the_split(shapenet_dir):
    cfg = dict(source="point_clouds", name="shapenet", path=str(shapenet_dir),
               categories=("airplane", "chair"), num_points=128, shuffle=False, num_epochs=1)
    assert data.event_shape(cfg) == (128, 3) and data.num_classes(cfg) is None
    batches = list(data.build_dataset(cfg, global_batch_size=5, seed=0))
    assert len(batches) == 1 and set(batches[0]) == {"x", "mask"}
    x = batches[0]["x"]
    assert x.shape == (5, 128, 3) and x.dtype == np.float32 and batches[0]["mask"].all()
    reader = pc.ShapeNetReader(str(shapenet_dir), ("airplane", "chair"), "train", 128)
    np.testing.assert_array_equal(x, reader.read(np.arange(5))["x"])
    # Normalised with the whole train split's statistics: 640 points of mean ~0, scale ~1.
    assert np.abs(x.reshape(-1, 3).mean(0)).max() < 0.2 and 0.8 < x.std() < 1.2
    val = dict(cfg, split="val")
    assert len(list(data.build_dataset(val, global_batch_size=2, seed=0))) == 1


def test_shapenet_missing_data_raises_clear_errors(shapenet_dir, tmp_path):
    base = dict(source="point_clouds", name="shapenet")
    for unset in (None, ""):
        with pytest.raises(ValueError, match=r"data\.path is required.*<synset id>/<split>"):
            data.build_dataset(dict(base, path=unset), global_batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"data\.path=.*not a directory.*<model>\.npy"):
        data.build_dataset(dict(base, path=str(tmp_path / "nope")), global_batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"'car' \(synset 02958343\).*data\.path="):
        data.build_dataset(dict(base, path=str(shapenet_dir), categories=("car",)),
                           global_batch_size=2, seed=0)
    (tmp_path / AIRPLANE / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .npy files"):
        data.build_dataset(dict(base, path=str(tmp_path)), global_batch_size=2, seed=0)
    bad = tmp_path / "bad"
    (bad / AIRPLANE / "train").mkdir(parents=True)
    np.save(bad / AIRPLANE / "train" / "m.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape \(10, 2\); expected \(M, 3\)"):
        data.shapenet_statistics(str(bad), ("airplane",))


def test_shapenet_category_table():
    assert len(data.SHAPENET_SYNSETS) == 55
    assert data.SHAPENET_SYNSETS["airplane"] == AIRPLANE
    assert data.SHAPENET_SYNSETS["chair"] == CHAIR
    assert data.SHAPENET_SYNSETS["car"] == "02958343"
    assert len(set(data.SHAPENET_SYNSETS.values())) == 55
    assert pc.resolve_categories("all") == tuple(data.SHAPENET_SYNSETS)
