"""Multi-object scenes with ground-truth instance masks, for object discovery (slot attention).

The data of Jung et al., 2024, "Learning to Compose: Improving Object Centric Learning by
Injecting Compositionality" (ICLR), section 4: CLEVRTex, MultiShapeNet and PTR images with their
instance masks, scored by FG-ARI and mIoU (`flowjax.metrics.segmentation`). The record source
"scenes" of `flowjax.data.pipeline` serves

    {"x": uint8 (b, H, W, 3) -> float32 in [-1, 1] after the pipeline (as every image source),
     "mask": int32 (b, H, W)}   # 0 = background, 1.. = objects

from one of three sets (`data.name`):

shapes (offline, synthetic)
    Record i of a split is drawn from `numpy.random.default_rng([0x5343454E, split tag, i])`:
    a background, plain (one colour) or, with `background="textured"`, a checkerboard of two
    colours with 4-pixel cells, then n ~ U{min_objects..max_objects} shapes painted in order, so
    that later shapes occlude earlier ones: a circle, a square or an upward triangle (equally
    likely), of radius (half side) uniform in [0.1, 0.22] of the side, centred uniformly so that
    it stays in the image, in a colour of the 12-hue palette `PALETTE` at one of three
    brightnesses (never the background's colours). A pixel belongs to the shape whose area
    contains its centre; the mask holds the id of the last shape painted there (1..n, in
    painting order; a shape covered entirely has no pixel), and every pixel of id j has exactly
    the colour of shape j (`scene_record` also returns the colours). Sizes: 10,000 train and
    1,000 test records (made on the fly).
directory (local files)
    `data.path` holds `<split>/images/<name>.png` (RGB) and `<split>/masks/<name>.png` (one
    channel of integer ids, 0 = background) with the same names, all of one size: e.g.
    CLEVRTex, MultiShapeNet or PTR exported at 128 x 128 (the paper's size). Listed in sorted
    order of the names.
tfds (a TFDS dataset prepared locally)
    `data.tfds_name` read through `tensorflow_datasets.data_source` from `data.data_dir`
    (nothing is downloaded; `flowjax.data.sources.tfds_builder` says how to prepare it): the
    features `image_key` (H, W, 3) uint8 and `mask_key` (H, W) or (H, W, 1) integer ids.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from flowjax.data import sources as _src

Batch = dict[str, np.ndarray]

SCENE_SETS: tuple[str, ...] = ("shapes", "directory", "tfds")
"""Values accepted for `data.name` of source "scenes"."""
SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUNDS: tuple[str, ...] = ("plain", "textured")
SPLITS: tuple[str, ...] = ("train", "test")
SHAPES_SIZES = {"train": 10_000, "test": 1_000}
SIZE_RANGE = (0.1, 0.22)
"""The radius (half side) of a shape as a fraction of the image side."""
CHECKER_CELL = 4
_TAG = 0x5343454E
_SPLIT_TAGS = {"train": 1, "test": 3}
_LAYOUT = ("a directory holding <split>/images/<name>.png (RGB) and <split>/masks/<name>.png "
           "(one channel of integer object ids, 0 = background) with the same names")


def _palette() -> np.ndarray:
    """12 hues x 3 brightnesses of saturated colours, uint8 (36, 3)."""
    hues = np.arange(12) / 12.0
    colours = []
    for value in (255, 190, 125):
        for h in hues:  # HSV -> RGB with saturation 1
            k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
            rgb = value * (1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
            colours.append(np.round(rgb))
    return np.asarray(colours, np.uint8)


PALETTE = _palette()
BACKGROUND_COLOURS = np.asarray([[40, 40, 40], [90, 90, 90], [150, 150, 150]], np.uint8)
"""Greys: the background takes one (plain) or two (textured); no shape colour is grey."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_spec(spec: dict[str, Any]) -> None:
    """Checks the "scenes" keys of a parsed data config (no file is read).

    Raises:
      ValueError: an unknown set, split or background, an image size that is not a positive
        int, object counts outside 1 <= min_objects <= max_objects, or keys of another set.
    """
    name = spec["name"]
    if name not in SCENE_SETS:
        raise ValueError(f"data.name={name!r} is not a scene set; expected one of {SCENE_SETS}.")
    if name == "shapes":
        if spec["split"] not in SPLITS:
            raise ValueError(f"data.split={spec['split']!r} is not a split of 'shapes'; expected "
                             f"one of {SPLITS}.")
        size = spec["image_size"]
        if not _is_int(size) or size < 8:
            raise ValueError(f"data.image_size must be an int >= 8, got {size!r}.")
        lo, hi = spec["min_objects"], spec["max_objects"]
        if not (_is_int(lo) and _is_int(hi) and 1 <= lo <= hi):
            raise ValueError(
                f"data.min_objects and data.max_objects must be ints with 1 <= min_objects <= "
                f"max_objects, got {lo!r} and {hi!r}."
            )
        if spec["background"] not in BACKGROUNDS:
            raise ValueError(f"data.background must be one of {BACKGROUNDS}, got "
                             f"{spec['background']!r}.")
    if name != "directory" and spec["path"]:
        raise ValueError(f"data.path applies to name='directory' only, not {name!r}.")
    if name == "tfds" and not spec["tfds_name"]:
        raise ValueError("data.tfds_name is required for name='tfds' (a locally prepared TFDS "
                         "dataset with images and instance masks).")


# --------------------------------------------------------------------------------------------
# "shapes": synthetic scenes.


def _shape_area(kind: str, centre: np.ndarray, radius: float, size: int) -> np.ndarray:
    """Bool (size, size): the pixels whose centre lies in the shape."""
    y, x = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    dy, dx = y - centre[0], x - centre[1]
    if kind == "circle":
        return dy**2 + dx**2 <= radius**2
    if kind == "square":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    # An upward triangle with its apex at the top of the bounding square and base at its bottom.
    return (dy <= radius) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) / 2)


def scene_record(
    split: str, index: int, image_size: int = 32, min_objects: int = 2, max_objects: int = 5,
    background: str = "plain",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scene `index` of `split` (module docstring): the image uint8 (S, S, 3), the mask int32
    (S, S) (0 background, j = the j-th shape painted) and the shapes' colours uint8 (n, 3)."""
    if split not in SPLITS:
        raise ValueError(f"'shapes' has no split {split!r}; expected one of {SPLITS}.")
    rng = np.random.default_rng([_TAG, _SPLIT_TAGS[split], int(index)])
    s = int(image_size)
    greys = rng.choice(len(BACKGROUND_COLOURS), 2, replace=False)
    image = np.broadcast_to(BACKGROUND_COLOURS[greys[0]], (s, s, 3)).copy()
    if background == "textured":
        cells = (np.arange(s)[:, None] // CHECKER_CELL + np.arange(s)[None, :] // CHECKER_CELL) % 2
        image[cells == 1] = BACKGROUND_COLOURS[greys[1]]
    mask = np.zeros((s, s), np.int32)
    n = int(rng.integers(min_objects, max_objects + 1))
    colours = PALETTE[rng.choice(len(PALETTE), n, replace=False)]
    for j in range(n):
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        radius = rng.uniform(*SIZE_RANGE) * s
        centre = rng.uniform(radius, s - radius, size=2)
        area = _shape_area(kind, centre, radius, s)
        image[area] = colours[j]
        mask[area] = j + 1
    return image, mask, colours


class ShapesSceneReader:
    """Synthetic scenes as a record source of the grain pipeline (made on the fly)."""

    def __init__(self, split: str, image_size: int, min_objects: int, max_objects: int,
                 background: str):
        self.split, self.image_size = split, int(image_size)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.background = background

    def __len__(self) -> int:
        return SHAPES_SIZES[self.split]

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        records = [scene_record(self.split, int(i), self.image_size, self.min_objects,
                                self.max_objects, self.background)[:2] for i in indices]
        s = self.image_size
        return {"x": np.stack([r[0] for r in records]).reshape(-1, s, s, 3),
                "mask": np.stack([r[1] for r in records]).reshape(-1, s, s)}


# --------------------------------------------------------------------------------------------
# "directory": images and masks as PNG files.


def directory_files(path: str | None, split: str) -> tuple[list[str], list[str]]:
    """The image and mask files of `split` under `path`, paired by name (sorted).

    Raises:
      ValueError: naming the expected layout, for a missing directory, no images, or an image
        without its mask.
    """
    if not path:
        raise ValueError(f"data.path is required for name='directory': {_LAYOUT}.")
    root = os.path.expanduser(str(path))
    images_dir, masks_dir = (os.path.join(root, split, d) for d in ("images", "masks"))
    for folder in (images_dir, masks_dir):
        if not os.path.isdir(folder):
            raise ValueError(f"{folder} is missing: data.path={str(path)!r} must be {_LAYOUT}.")
    names = sorted(f for f in os.listdir(images_dir) if f.endswith(".png"))
    if not names:
        raise ValueError(f"{images_dir} holds no .png images; data.path must be {_LAYOUT}.")
    missing = [n for n in names if not os.path.isfile(os.path.join(masks_dir, n))]
    if missing:
        raise ValueError(f"{len(missing)} image(s) of {images_dir} have no mask in {masks_dir}, "
                         f"e.g. {missing[0]!r}; data.path must be {_LAYOUT}.")
    images = [os.path.join(images_dir, n) for n in names]
    return images, [os.path.join(masks_dir, n) for n in names]


def _read_png(file: str) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as image:
        return np.asarray(image)


def _check_pair(image: np.ndarray, mask: np.ndarray, shape: tuple[int, ...], where: str):
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape != shape or mask.shape != shape[:2]:
        raise ValueError(
            f"{where}: image {image.shape} and mask {mask.shape}; every example must be an RGB "
            f"image of shape {shape} with a one-channel mask of shape {shape[:2]}."
        )
    return image.astype(np.uint8), mask.astype(np.int32)


class DirectorySceneReader:
    """Images and masks of `directory_files` as a record source; the first image fixes the
    shape, and a record of another shape raises a ValueError naming it."""

    def __init__(self, path: str, split: str):
        self.images, self.masks = directory_files(path, split)
        first = _read_png(self.images[0])
        self.shape = (*first.shape[:2], 3)
        _check_pair(first, _read_png(self.masks[0]), self.shape, self.images[0])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        pairs = [_check_pair(_read_png(self.images[i]), _read_png(self.masks[i]), self.shape,
                             self.images[i]) for i in np.asarray(indices, int)]
        return {"x": np.stack([p[0] for p in pairs]).reshape(-1, *self.shape),
                "mask": np.stack([p[1] for p in pairs]).reshape(-1, *self.shape[:2])}


# --------------------------------------------------------------------------------------------
# "tfds": a locally prepared TFDS dataset.


class TfdsSceneReader:
    """A TFDS split with images and instance masks (read through `tfds.data_source`)."""

    def __init__(self, name: str, split: str, data_dir: str | None, image_key: str,
                 mask_key: str):
        builder = _src.tfds_builder(name, data_dir)
        _src.check_tfds_split(builder, split)
        self.shape = _src.tfds_event_shape(builder, image_key)
        _src.tfds_event_shape(builder, mask_key)
        self.name, self.split, self.data_dir = name, split, data_dir
        self.image_key, self.mask_key = image_key, mask_key
        self._len = len(self._source)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_source"}

    @functools.cached_property
    def _source(self) -> Any:
        import tensorflow_datasets as tfds

        return tfds.data_source(self.name, split=self.split, data_dir=self.data_dir,
                                download=False)

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        examples = self._source.__getitems__([int(i) for i in indices])
        pairs = [_check_pair(np.asarray(e[self.image_key]), np.asarray(e[self.mask_key]),
                             self.shape, f"{self.name}[{self.split}]") for e in examples]
        return {"x": np.stack([p[0] for p in pairs]).reshape(-1, *self.shape),
                "mask": np.stack([p[1] for p in pairs]).reshape(-1, *self.shape[:2])}


def open_reader(spec: dict[str, Any]):
    """The reader of a checked "scenes" spec (see `check_spec`)."""
    if spec["name"] == "shapes":
        return ShapesSceneReader(spec["split"], spec["image_size"], spec["min_objects"],
                                 spec["max_objects"], spec["background"])
    if spec["name"] == "directory":
        return DirectorySceneReader(spec["path"], spec["split"])
    return TfdsSceneReader(spec["tfds_name"], spec["split"], spec["data_dir"],
                           spec["image_key"], spec["mask_key"])


def event_shape(spec: dict[str, Any]) -> tuple[int, int, int]:
    """(H, W, 3) of a checked spec (reads the first image of a directory or the TFDS info)."""
    if spec["name"] == "shapes":
        return (int(spec["image_size"]), int(spec["image_size"]), 3)
    return tuple(open_reader(spec).shape)


__all__ = [
    "BACKGROUNDS",
    "PALETTE",
    "SCENE_SETS",
    "SHAPE_KINDS",
    "DirectorySceneReader",
    "ShapesSceneReader",
    "TfdsSceneReader",
    "check_spec",
    "directory_files",
    "event_shape",
    "open_reader",
    "scene_record",
]
