"""Image data for the Flow Matching Guide's image recipes (Lipman et al., 2024; PAPERS.md,
section 1): the catalogue of its datasets, the offline digits dataset, and sample grids.

Catalogue (`IMAGE_DATASETS`): CIFAR-10 (TFDS "cifar10", 32x32x3, 10 classes) and ImageNet
downsampled to 32x32 and 64x64 (TFDS "imagenet_resized/32x32" and ".../64x64", 1000 classes).
They are read by the grain pipeline of `flowjax.data.pipeline` through `tfds.data_source`
(source "tfds": per-process sharding of every global batch, optional random left-right flips,
uint8 pixels scaled to [-1, 1] by x / 127.5 - 1). Nothing is downloaded: a dataset must be
prepared in `data_dir` beforehand (`tfds build cifar10 --file_format=array_record
--data_dir=DIR`), otherwise building the pipeline raises an error naming the dataset and the
directory. `image_data_config` writes the `config.data` of a catalogue entry.

Digits (source "digits"): scikit-learn's copy of the UCI optical-recognition digits, 1797
grayscale 8x8 images with 17 intensity levels 0..16 and labels 0-9, shipped inside the package
so that image runs work offline on a CPU. Kept at their native 8x8 (a UNet with two resolution
levels, 8x8 and 4x4, or a DiT with patch 2 fits them) and scaled to [-1, 1] by x / 8 - 1.
Split: every fifth image (index % 5 == 0, 360 images) is "test", the other 1437 are "train".
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from flowjax.data.sources import ArrayReader

DIGITS_SPLITS = ("train", "test")
DIGITS_SHAPE = (8, 8, 1)
DIGITS_NUM_CLASSES = 10
DIGITS_MAX_INTENSITY = 16.0


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """A catalogue entry: where the images are and what they look like.

    Attributes:
      tfds_name: the TFDS name (None for data shipped with a package).
      image_size: height = width of the images.
      channels: 3 for RGB, 1 for grayscale.
      num_classes: number of class labels.
      eval_split: the held-out split (reference statistics for FID).
    """

    tfds_name: str | None
    image_size: int
    channels: int
    num_classes: int
    eval_split: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


IMAGE_DATASETS: dict[str, ImageDataset] = {
    "cifar10": ImageDataset("cifar10", 32, 3, 10, "test"),
    "imagenet32": ImageDataset("imagenet_resized/32x32", 32, 3, 1000, "validation"),
    "imagenet64": ImageDataset("imagenet_resized/64x64", 64, 3, 1000, "validation"),
    "digits": ImageDataset(None, 8, 1, DIGITS_NUM_CLASSES, "test"),
}


def image_data_config(
    name: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    random_flip: bool = True,
    labels: bool = True,
) -> dict:
    """The `config.data` of catalogue dataset `name` (a TFDS source, or the digits source).

    Args:
      split: the TFDS split ("train", "test", "validation", "train[:90%]", ...), or a digits
        split.
      data_dir: the TFDS data directory holding the prepared dataset (None: TFDS's default).
      random_flip: flip each image left-right with probability 1/2 (not for digits).
      labels: read the class labels (class-conditional models); False for unconditional ones.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"Unknown image dataset {name!r}; expected one of {list(IMAGE_DATASETS)}.")
    entry = IMAGE_DATASETS[name]
    if entry.tfds_name is None:
        if random_flip:
            raise ValueError("Digits are not mirror-symmetric: use random_flip=False.")
        if not labels:
            raise ValueError("The digits source always carries its labels.")
        return dict(source="digits", split=split)
    return dict(
        source="tfds",
        name=entry.tfds_name,
        split=split,
        data_dir=data_dir,
        label_key="label" if labels else None,
        random_flip=random_flip,
    )


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32) / np.float32(DIGITS_MAX_INTENSITY / 2) - np.float32(1)
    return x[..., None], bunch.target.astype(np.int32)


def load_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (n, 8, 8, 1) in [-1, 1], labels int32 (n,)) of a digits split."""
    if split not in DIGITS_SPLITS:
        raise ValueError(f"Unknown digits split {split!r}; expected one of {DIGITS_SPLITS}.")
    x, labels = _digits()
    test = np.arange(len(x)) % 5 == 0
    keep = test if split == "test" else ~test
    return x[keep], labels[keep]


def digits_reader(split: str) -> ArrayReader:
    """A record reader over a digits split, for the grain pipeline."""
    return ArrayReader(*load_digits(split))


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Images (n, H, W, C) in [-1, 1] tiled row by row into one uint8 image
    (rows * (H + 1) - 1, columns * (W + 1) - 1, C), with 1-pixel white gaps."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"Expected images of shape (n, H, W, C), got {images.shape}.")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = pixels[i]
    return grid


def save_image_grid(path: str, images: np.ndarray, columns: int | None = None,
                    scale: int = 1) -> str:
    """Writes `image_grid(images, columns)` to a PNG file, each pixel repeated `scale` times
    along both axes; returns `path`."""
    import matplotlib.image

    grid = image_grid(images, columns)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, axis=-1)
    matplotlib.image.imsave(path, grid)
    return path
