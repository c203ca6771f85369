"""Image data (digits, the TFDS catalogue through locally built stand-ins) and the image configs'
smoke runs through the command line: train a few steps, sample, write a grid.

The TFDS tests build small stand-ins of "cifar10" and "imagenet_resized/32x32" in a temporary
data_dir with the catalogue's own builders (their features, splits and names) and random
images, since nothing can be downloaded here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from train_testing import run_cli

from flowjax import data

FAKE_IMAGES = 16


# Digits --------------------------------------------------------------------------------------


def test_digits_splits_values_and_labels():
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    train_x, train_y = data.load_digits("train")
    test_x, test_y = data.load_digits("test")
    assert train_x.shape == (1437, 8, 8, 1) and test_x.shape == (360, 8, 8, 1)
    assert train_x.dtype == np.float32 and train_y.dtype == np.int32
    # x = intensity / 8 - 1 exactly: the 17 levels 0..16 map onto [-1, 1].
    np.testing.assert_array_equal(test_x[..., 0], bunch.images[::5] / 8 - 1)
    np.testing.assert_array_equal(test_y, bunch.target[::5])
    keep = np.arange(1797) % 5 != 0
    np.testing.assert_array_equal(train_x[..., 0], bunch.images[keep] / 8 - 1)
    assert train_x.min() == -1 and train_x.max() == 1
    with pytest.raises(ValueError, match="digits split"):
        data.build_dataset(dict(source="digits", split="valid"), global_batch_size=8, seed=0)


def test_digits_pipeline_shards_processes_and_covers_each_image_once_per_epoch():
    """Two processes' rows concatenate to the one-process batch; an epoch of the 360 test
    digits (batches of 40) visits every image exactly once."""
    cfg = dict(source="digits", split="test")
    one = data.build_map_dataset(cfg, global_batch_size=40, seed=3)
    halves = [
        data.build_map_dataset(cfg, global_batch_size=40, seed=3, process_index=p,
                               process_count=2)
        for p in (0, 1)
    ]
    for i in (0, 5):
        for key in ("x", "label"):
            np.testing.assert_array_equal(
                np.concatenate([halves[0][i][key], halves[1][i][key]]), one[i][key]
            )
    epoch = np.concatenate([one[i]["x"] for i in range(9)]).reshape(360, -1)
    reference = data.load_digits("test")[0].reshape(360, -1)
    order = np.lexsort(epoch.T)
    np.testing.assert_array_equal(epoch[order], reference[np.lexsort(reference.T)])
    assert data.event_shape(cfg) == (8, 8, 1) and data.num_classes(cfg) == 10


def test_image_grid_layout():
    images = np.stack([np.full((2, 3, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    grid = data.image_grid(images, columns=2)
    assert grid.shape == (2 * 3 - 1, 2 * 4 - 1, 1)
    assert (grid[:2, :3] == 0).all() and (grid[:2, 4:7] == 128).all()  # round(127.5) = 128
    assert (grid[3:5, :3] == 255).all()
    assert (grid[2] == 255).all() and (grid[:, 3] == 255).all()  # white gaps
    assert (grid[3:5, 4:7] == 255).all()  # the empty cell


# TFDS catalogue entries, built locally --------------------------------------------------------


def fake_catalogue_dataset(name: str, data_dir: str) -> np.ndarray:
    """Builds `FAKE_IMAGES` random images per split of catalogue dataset `name` (e.g.
    "cifar10", "imagenet_resized/32x32") in `data_dir` with its own builder; returns the
    training images (uint8)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    pil = pytest.importorskip("PIL.Image")
    base = type(tfds.builder(name, data_dir=data_dir))
    config = name.split("/")[1] if "/" in name else None
    generated = {}

    with tfds.core.registered.skip_registration():

        class Stand_in(base):  # noqa: N801
            name = base.name
            url_infos = None

            def _split_generators(self, dl_manager):
                del dl_manager
                return {split: self._examples(split) for split in ("train", "test", "validation")}

            def _examples(self, split):
                shape = self.info.features["image"].shape
                rng = np.random.default_rng(len(split))
                images = rng.integers(0, 256, size=(FAKE_IMAGES, *shape), dtype=np.uint8)
                generated[split] = images
                for i, image in enumerate(images):
                    buf = io.BytesIO()
                    pil.fromarray(image).save(buf, format="PNG")
                    example = {"image": buf.getvalue(), "label": i % 10}
                    if "id" in self.info.features:
                        example["id"] = f"{split}_{i}"
                    yield i, example

    kwargs = dict(config=config) if config else {}
    builder = Stand_in(data_dir=data_dir, file_format="array_record", **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return generated["train"]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tfds"))
    images = {
        name: fake_catalogue_dataset(name, directory)
        for name in ("cifar10", "imagenet_resized/32x32", "imagenet_resized/64x64")
    }
    return directory, images


def test_catalogue_pipeline_scales_flips_and_labels(tfds_dir):
    directory, images = tfds_dir
    cfg = data.image_data_config("cifar10", data_dir=directory, random_flip=True)
    ds = data.build_map_dataset({**cfg, "shuffle": False}, global_batch_size=FAKE_IMAGES, seed=0)
    batch = ds[0]  # every image once, in TFDS's stored order
    expected = images["cifar10"].astype(np.float32) / 127.5 - 1  # generation order
    plain = np.all(np.abs(batch["x"][:, None] - expected[None]) < 1e-6, axis=(2, 3, 4))
    flipped = np.all(np.abs(batch["x"][:, None] - expected[None, :, :, ::-1]) < 1e-6,
                     axis=(2, 3, 4))
    index = np.argmax(plain | flipped, axis=1)
    assert np.all((plain | flipped).any(axis=1))
    assert sorted(index) == list(range(FAKE_IMAGES))
    assert 0 < flipped.any(axis=1).sum() < FAKE_IMAGES  # some flipped, some not
    np.testing.assert_array_equal(batch["label"], index % 10)
    imagenet = data.image_data_config("imagenet32", data_dir=directory)
    assert data.event_shape(imagenet) == (32, 32, 3) and data.num_classes(imagenet) == 1000


# The configs' smoke variants through the command line ----------------------------------------


def check_smoke_run(workdir, result, num_samples=16, shape=(8, 8, 1)):
    assert result.returncode == 0, result.stderr[-5000:]
    with open(workdir / "metrics.jsonl") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [1, 2, 3]
    samples = np.load(workdir / "samples.npy")
    assert samples.shape == (num_samples, *shape) and np.isfinite(samples).all()
    assert (workdir / "plots" / "samples.png").stat().st_size > 0
    with open(workdir / "sample_metrics.json") as f:
        return json.load(f)


@pytest.mark.slow
def test_digits_smoke_trains_and_samples_through_the_cli(tmp_path):
    result = run_cli("--config=configs/fm_guide/digits.py:smoke", f"--workdir={tmp_path}",
                     "--mode=train", "--config.evaluate.after_training=False")
    assert result.returncode == 0, result.stderr[-5000:]
    result = run_cli("--config=configs/fm_guide/digits.py:smoke", f"--workdir={tmp_path}",
                     "--mode=sample")
    settings = check_smoke_run(tmp_path, result)
    assert settings["time_grid"] == "edm" and settings["guidance_scale"] == 0.2


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, shape",
    [
        ("digits.py:dit_smoke", (8, 8, 1)),
        ("cifar10.py:smoke", (32, 32, 3)),
        ("cifar10.py:dit_smoke", (32, 32, 3)),
        ("imagenet32.py:smoke", (32, 32, 3)),
        ("imagenet64.py:smoke", (64, 64, 3)),
    ],
)
def test_other_smoke_configs_train_and_sample_through_the_cli(config, shape, tfds_dir, tmp_path):
    directory, _ = tfds_dir
    args = [f"--config=configs/fm_guide/{config}", f"--workdir={tmp_path}", "--mode=train"]
    if not config.startswith("digits"):
        args.append(f"--config.data.data_dir={directory}")
    check_smoke_run(tmp_path, run_cli(*args), shape=shape)
    with open(tmp_path / "metrics.json") as f:
        assert np.isfinite(json.load(f)["nll_bits_per_dim"])


@pytest.mark.slow
def test_imagenet64_smoke_config_checks_its_image_size(tfds_dir, tmp_path):
    """The imagenet64 config refuses 32x32 data before anything is compiled."""
    directory, _ = tfds_dir
    result = run_cli("--config=configs/fm_guide/imagenet64.py:smoke", f"--workdir={tmp_path}",
                     "--mode=train", f"--config.data.data_dir={directory}",
                     "--config.data.name=imagenet_resized/32x32")
    assert result.returncode != 0
    assert "model.image_size=64 does not match the data's images of 32x32" in result.stderr
