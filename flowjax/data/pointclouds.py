"""Point-cloud sets for SetVAE (Kim et al., CVPR 2021, "SetVAE: Learning Hierarchical
Composition for Generative Modeling of Set-Structured Data"): each example is a set of N points
in R^D stored as a padded array with a mask.

The record source "point_clouds" of `flowjax.data.pipeline` serves them as

    {"x": float32 (b, N, D),   # padded points are zeros
     "mask": bool (b, N),       # True for a real point (SetVAE's own code stores the opposite)
     "label": int32 (b,)}       # only for "shapes"

and every set is a pure function of (split, record index): the same index gives the same
points on any run, at any resume step and on any number of processes. Three sets:

shapes (offline, synthetic; D = 3, 3 classes)
    Surfaces of known families, so that a model's samples can be checked exactly. Record i of
    a split is family i % 3: label 0 sphere (radius s), 1 cube surface (half side s, i.e. all
    points have max_k |x_k| = s), 2 torus about the z axis (major radius s, minor radius
    0.35 s: (sqrt(x^2 + y^2) - s)^2 + z^2 = (0.35 s)^2). The scale s is drawn per set,
    uniform in [0.6, 1.2] (isotropic), and the N points are drawn uniformly in surface area:
    on the sphere by normalised Gaussians, on the cube by choosing one of the six (equal)
    faces uniformly, on the torus by rejection sampling of the tube angle v with acceptance
    (1 + 0.35 cos v) / 1.35, the area element's dependence on v. All sets are centred at the
    origin and axis-aligned. Record i of split `split` is drawn from
    `numpy.random.default_rng([0x53484150, split tag, i])` (train and test streams differ).
    Sizes: train 3,000 sets, test 600.
set_multimnist (offline, from scikit-learn's 8x8 digits; D = 2, no labels)
    A small stand-in for SetVAE's Set-MultiMNIST (two 28x28 MNIST digits on a 64x64 canvas,
    one in the left half and one in the right half at random positions; the pixels above a
    threshold become points (row, col) + uniform jitter in [0, 1), divided by 64; at most 600
    points per set). Here: scikit-learn's 1,797 digits (intensities 0..16) are split by a fixed
    permutation into 1,500 train and 297 test images; record i draws two images of its split,
    upsamples each to 24x24 (nearest neighbour, x3), puts the first in the left and the second
    in the right 32-column half of a 64x64 canvas at uniformly random positions that do not
    clip (rows 0..40, columns 0..8 within the half; overlapping pixels would take the max),
    turns the pixels > 8 (half of 16) into points (row, col) + uniform jitter in [0, 1),
    divides by 64 (so points lie in [0, 1)^2) and lists them in random order. A set has 180 to
    486 points (about 337 on average; so none is cut at SetVAE's 600); with more than N the
    first N are kept (a random subset), and the rest of the N slots are zeros, mask False.
    Drawn from `numpy.random.default_rng([0x4D4E4953, split tag, i])`. Sizes: train 10,000
    records, test 2,000 (records are made on the fly, so the size only sets the epoch length;
    SetVAE's set has 60,000 / 10,000 images).
shapenet (D = 3, no labels)
    ShapeNetCore.v2.PC15k as distributed by PointFlow (Yang et al., 2019): a directory
    `data.path` holding `<synset id>/<split>/<model>.npy`, each (15000, 3), split "train",
    "val" or "test" (PointFlow and SetVAE evaluate on "val"). Categories are named as in
    PointFlow's table (`SHAPENET_SYNSETS`, 55 names; "all" takes every one). Normalisation is
    PointFlow's default, the one SetVAE's runs use (normalize_per_shape=False,
    normalize_std_per_axis=False): x -> (x - mean) / std with the per-axis mean (3,) of all
    points of all training shapes of the chosen categories and one scalar std, the standard
    deviation of all their coordinates pooled (numpy's `points.reshape(-1).std()`); computed
    once from the train split (`shapenet_statistics`, cached) and applied to every split.
    Points: record i (models listed category by category, file names sorted) gives the first
    N points of the permutation `numpy.random.default_rng([0x53484E54, split tag, i])
    .permutation(15000)` of its model. PointFlow instead draws a fresh random subset (with
    replacement, from the first 10,000 points of each model) every time a training shape is
    read, and evaluates on the first N of the last 5,000; a fixed subset per record keeps
    resumed and multi-process runs exactly reproducible, at the cost of always showing the
    model the same N points of each shape.

`sample_surface`, `shapes_record`, `set_multimnist_record` and `shapenet_statistics` give the
sets directly; `open_reader(spec)` is the reader the pipeline uses (`ShapesReader`,
`SetMultiMNISTReader`, `ShapeNetReader`: `len`, `has_labels`, `read(indices)`).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]

POINT_CLOUD_SETS: tuple[str, ...] = ("shapes", "set_multimnist", "shapenet")
"""Values accepted for `data.name` of source "point_clouds"."""

SPLITS: dict[str, tuple[str, ...]] = {
    "shapes": ("train", "test"),
    "set_multimnist": ("train", "test"),
    "shapenet": ("train", "val", "test"),
}
DEFAULT_NUM_POINTS: dict[str, int] = {"shapes": 2048, "set_multimnist": 600, "shapenet": 2048}
POINT_DIM: dict[str, int] = {"shapes": 3, "set_multimnist": 2, "shapenet": 3}
DEFAULT_CATEGORIES: tuple[str, ...] = ("airplane",)

SHAPE_FAMILIES: tuple[str, ...] = ("sphere", "cube", "torus")
"""The "shapes" families; record i has label i % 3, the family's index here."""
SHAPES_SIZES: dict[str, int] = {"train": 3000, "test": 600}
SHAPES_SCALE_RANGE = (0.6, 1.2)
TORUS_RADII = (1.0, 0.35)
"""(major, minor) radius of the "shapes" torus before scaling."""

MULTIMNIST_SIZES: dict[str, int] = {"train": 10000, "test": 2000}
MULTIMNIST_MAX_POINTS = 600
MULTIMNIST_CANVAS = 64
MULTIMNIST_UPSAMPLE = 3
MULTIMNIST_THRESHOLD = 8.0  # pixels > 8 of 0..16 become points
_DIGITS_TEST_SIZE = 297
_DIGITS_SPLIT_SEED = 20210619

SHAPENET_POINTS = 15000
"""Points per model of ShapeNetCore.v2.PC15k (an upper bound on `data.num_points`)."""

# Category name -> synset id, PointFlow's table (datasets.py, `synsetid_to_cate`, itself from
# latent_3d_points); SetVAE's datasets/ShapeNet.py holds the same table. 55 categories.
SHAPENET_SYNSETS: dict[str, str] = {
    "airplane": "02691156", "bag": "02773838", "basket": "02801938",
    "bathtub": "02808440", "bed": "02818832", "bench": "02828884",
    "bottle": "02876657", "bowl": "02880940", "bus": "02924116",
    "cabinet": "02933112", "can": "02747177", "camera": "02942699",
    "cap": "02954340", "car": "02958343", "chair": "03001627",
    "clock": "03046257", "dishwasher": "03207941", "monitor": "03211117",
    "table": "04379243", "telephone": "04401088", "tin_can": "02946921",
    "tower": "04460130", "train": "04468005", "keyboard": "03085013",
    "earphone": "03261776", "faucet": "03325088", "file": "03337140",
    "guitar": "03467517", "helmet": "03513137", "jar": "03593526",
    "knife": "03624134", "lamp": "03636649", "laptop": "03642806",
    "speaker": "03691459", "mailbox": "03710193", "microphone": "03759954",
    "microwave": "03761084", "motorcycle": "03790512", "mug": "03797390",
    "piano": "03928116", "pillow": "03938244", "pistol": "03948459",
    "pot": "03991062", "printer": "04004475", "remote_control": "04074963",
    "rifle": "04090263", "rocket": "04099429", "skateboard": "04225987",
    "sofa": "04256520", "stove": "04330267", "vessel": "04530566",
    "washer": "04554684", "cellphone": "02992529", "birdhouse": "02843684",
    "bookshelf": "02871439",
}  # fmt: skip

# Domain tags of the NumPy streams (one per set) and of the splits.
_SHAPES_TAG = 0x53484150
_MNIST_TAG = 0x4D4E4953
_SHAPENET_TAG = 0x53484E54
_SPLIT_TAGS = {"train": 1, "val": 2, "test": 3}

_LAYOUT = (
    "a directory holding <synset id>/<split>/<model>.npy files of shape (15000, 3) "
    "(ShapeNetCore.v2.PC15k as distributed by PointFlow, e.g. <path>/02691156/train/*.npy "
    "for airplanes)"
)


# --------------------------------------------------------------------------------------------
# Config checks (no file access).


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def resolve_categories(categories: Any) -> tuple[str, ...]:
    """The category names of `data.categories` (a name, or a sequence of names; "all" is
    every category of `SHAPENET_SYNSETS`), checked against PointFlow's table."""
    names = (categories,) if isinstance(categories, str) else tuple(categories or ())
    if not names or not all(isinstance(c, str) for c in names):
        raise ValueError(
            f"data.categories must be a non-empty sequence of ShapeNet category names, got "
            f"{categories!r}."
        )
    if "all" in names:
        return tuple(SHAPENET_SYNSETS)
    unknown = [c for c in names if c not in SHAPENET_SYNSETS]
    if unknown:
        raise ValueError(
            f"Unknown ShapeNet categor{'y' if len(unknown) == 1 else 'ies'} {unknown} in "
            f"data.categories; expected names of {sorted(SHAPENET_SYNSETS)} or 'all'."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"data.categories lists a category twice: {list(names)}.")
    return names


def check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Checks the "point_clouds" keys of a parsed data config and returns them resolved:
    `num_points` with its per-set default filled in and `categories` as a tuple of names.

    Raises:
      ValueError: an unknown set name or split, a `num_points` that is not a positive int (at
        most 15,000 for "shapenet"), or `path` / `categories` given for a set other than
        "shapenet".
    """
    name = spec["name"]
    if name not in POINT_CLOUD_SETS:
        raise ValueError(
            f"data.name={name!r} is not a point-cloud set; expected one of {POINT_CLOUD_SETS}."
        )
    if spec["split"] not in SPLITS[name]:
        raise ValueError(
            f"data.split={spec['split']!r} is not a split of {name!r}; expected one of "
            f"{SPLITS[name]}."
        )
    num_points = spec["num_points"]
    if num_points is None:
        num_points = DEFAULT_NUM_POINTS[name]
    if not _is_int(num_points) or num_points < 1:
        raise ValueError(f"data.num_points must be a positive int, got {num_points!r}.")
    if name == "shapenet" and num_points > SHAPENET_POINTS:
        raise ValueError(
            f"data.num_points={num_points} is more than the {SHAPENET_POINTS} points of a "
            "ShapeNetCore.v2.PC15k model."
        )
    categories = spec["categories"]
    if name == "shapenet":
        categories = resolve_categories(categories)
    else:
        if spec["path"]:
            raise ValueError(
                f"data.path applies to name='shapenet' only; {name!r} is generated offline "
                "(leave data.path=None)."
            )
        given = (categories,) if isinstance(categories, str) else tuple(categories or ())
        if given != DEFAULT_CATEGORIES:
            raise ValueError(f"data.categories applies to name='shapenet' only, not {name!r}.")
        categories = DEFAULT_CATEGORIES
    return {"num_points": int(num_points), "categories": categories}


def event_shape(spec: dict[str, Any]) -> tuple[int, int]:
    """(N, D) of one set of a checked spec; reads no file."""
    return (int(spec["num_points"]), POINT_DIM[spec["name"]])


def num_classes(name: str) -> int | None:
    """3 for "shapes" (sphere, cube, torus), None for the unlabelled sets."""
    return len(SHAPE_FAMILIES) if name == "shapes" else None


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS[name]:
        raise ValueError(f"{name!r} has no split {split!r}; expected one of {SPLITS[name]}.")


def _check_record(index: int, size: int, split: str) -> int:
    index = int(index)
    if not 0 <= index < size:
        raise IndexError(f"Record {index} out of range for the {size} records of split {split!r}.")
    return index


# --------------------------------------------------------------------------------------------
# "shapes": surfaces of known families.


def _torus_tube_angles(num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Tube angles v with density proportional to R + r cos v (area-uniform on the torus),
    by rejection: a uniform v is kept with probability (R + r cos v) / (R + r)."""
    major, minor = TORUS_RADII
    accept_rate = major / (major + minor)
    kept: list[np.ndarray] = []
    count = 0
    while count < num_points:
        draws = int(math.ceil((num_points - count) / accept_rate * 1.1)) + 16
        v = rng.uniform(0.0, 2.0 * np.pi, draws)
        keep = rng.uniform(0.0, 1.0, draws) * (major + minor) < major + minor * np.cos(v)
        kept.append(v[keep])
        count += int(keep.sum())
    return np.concatenate(kept)[:num_points]


def sample_surface(
    family: str, num_points: int, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """`num_points` points (float64 (n, 3)) drawn uniformly in area on a surface centred at 0.

    Args:
      family: "sphere" (radius `scale`), "cube" (the surface of [-scale, scale]^3) or "torus"
        (about the z axis, radii `scale` * TORUS_RADII).
      num_points: how many points.
      rng: the NumPy generator the points are drawn from.
      scale: the isotropic size of the surface.
    """
    if family == "sphere":
        g = rng.standard_normal((num_points, 3))
        return scale * g / np.linalg.norm(g, axis=1, keepdims=True)
    if family == "cube":
        face = rng.integers(0, 6, num_points)  # the six faces have equal area
        p = rng.uniform(-1.0, 1.0, (num_points, 3))
        p[np.arange(num_points), face // 2] = np.where(face % 2 == 0, -1.0, 1.0)
        return scale * p
    if family == "torus":
        major, minor = TORUS_RADII
        v = _torus_tube_angles(num_points, rng)
        u = rng.uniform(0.0, 2.0 * np.pi, num_points)
        ring = major + minor * np.cos(v)
        return scale * np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], axis=1)
    raise ValueError(f"Unknown surface family {family!r}; expected one of {SHAPE_FAMILIES}.")


def shapes_record(split: str, index: int, num_points: int) -> tuple[np.ndarray, int, float]:
    """Record `index` of a "shapes" split: (points float32 (num_points, 3), label, scale)."""
    _check_split("shapes", split)
    index = _check_record(index, SHAPES_SIZES[split], split)
    rng = np.random.default_rng([_SHAPES_TAG, _SPLIT_TAGS[split], index])
    scale = float(rng.uniform(*SHAPES_SCALE_RANGE))
    label = index % len(SHAPE_FAMILIES)
    points = sample_surface(SHAPE_FAMILIES[label], int(num_points), rng, scale)
    return points.astype(np.float32), label, scale


class ShapesReader:
    """The "shapes" split as a record source of the grain pipeline."""

    def __init__(self, split: str = "train", num_points: int = DEFAULT_NUM_POINTS["shapes"]):
        _check_split("shapes", split)
        self.split, self.num_points = split, int(num_points)

    def __len__(self) -> int:
        return SHAPES_SIZES[self.split]

    @property
    def has_labels(self) -> bool:
        return True

    def read(self, indices: np.ndarray) -> Batch:
        records = [shapes_record(self.split, int(i), self.num_points) for i in indices]
        return {
            "x": np.stack([r[0] for r in records]).reshape(len(records), self.num_points, 3),
            "mask": np.ones((len(records), self.num_points), bool),
            "label": np.asarray([r[1] for r in records], np.int32),
        }


# --------------------------------------------------------------------------------------------
# "set_multimnist": two digits on a 64x64 canvas, as point sets.


@functools.lru_cache(maxsize=None)
def _digit_images(split: str) -> np.ndarray:
    """The split's scikit-learn digits, float32 (n, 8, 8) with values 0..16 (read-only)."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)
    perm = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(images))
    chosen = perm[:_DIGITS_TEST_SIZE] if split == "test" else perm[_DIGITS_TEST_SIZE:]
    out = images[np.sort(chosen)]
    out.setflags(write=False)
    return out


def multimnist_canvas(split: str, index: int) -> tuple[np.ndarray, np.random.Generator]:
    """The 64x64 canvas (float32, values 0..16) of record `index`, and the generator it was
    drawn from (positioned to draw that record's jitter and point order next)."""
    _check_split("set_multimnist", split)
    index = _check_record(index, MULTIMNIST_SIZES[split], split)
    images = _digit_images(split)
    rng = np.random.default_rng([_MNIST_TAG, _SPLIT_TAGS[split], index])
    picks = rng.integers(0, len(images), 2)
    size, half = 8 * MULTIMNIST_UPSAMPLE, MULTIMNIST_CANVAS // 2
    rows = rng.integers(0, MULTIMNIST_CANVAS - size + 1, 2)
    cols = rng.integers(0, half - size + 1, 2) + np.asarray([0, half])
    canvas = np.zeros((MULTIMNIST_CANVAS, MULTIMNIST_CANVAS), np.float32)
    for pick, r, c in zip(picks, rows, cols, strict=True):
        digit = np.kron(images[pick], np.ones((MULTIMNIST_UPSAMPLE, MULTIMNIST_UPSAMPLE)))
        window = canvas[r : r + size, c : c + size]
        np.maximum(window, digit, out=window)
    return canvas, rng


def set_multimnist_record(
    split: str, index: int, num_points: int = MULTIMNIST_MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Record `index` of a "set_multimnist" split: (points float32 (num_points, 2) in
    [0, 1)^2 as (row, col) / 64, zeros where padded; mask bool (num_points,), True for a
    point)."""
    canvas, rng = multimnist_canvas(split, index)
    pixels = np.argwhere(canvas > MULTIMNIST_THRESHOLD).astype(np.float64)
    points = (pixels + rng.uniform(0.0, 1.0, pixels.shape)) / MULTIMNIST_CANVAS
    points = points[rng.permutation(len(points))][:num_points]
    x = np.zeros((num_points, 2), np.float32)
    x[: len(points)] = points
    mask = np.arange(num_points) < len(points)
    return x, mask


class SetMultiMNISTReader:
    """The "set_multimnist" split as a record source of the grain pipeline."""

    def __init__(self, split: str = "train", num_points: int = MULTIMNIST_MAX_POINTS):
        _check_split("set_multimnist", split)
        self.split, self.num_points = split, int(num_points)

    def __len__(self) -> int:
        return MULTIMNIST_SIZES[self.split]

    @property
    def has_labels(self) -> bool:
        return False

    def read(self, indices: np.ndarray) -> Batch:
        records = [set_multimnist_record(self.split, int(i), self.num_points) for i in indices]
        k = len(records)
        return {
            "x": np.stack([r[0] for r in records]).reshape(k, self.num_points, 2),
            "mask": np.stack([r[1] for r in records]).reshape(k, self.num_points),
        }


# --------------------------------------------------------------------------------------------
# "shapenet": ShapeNetCore.v2.PC15k.


def shapenet_files(path: str | None, categories: Sequence[str], split: str) -> list[str]:
    """The .npy files of `split` for `categories` (category by category, names sorted).

    Raises:
      ValueError: naming the expected layout, when `path` is None or missing, or a category
        has no `<path>/<synset id>/<split>` directory or no .npy file in it.
    """
    _check_split("shapenet", split)
    names = resolve_categories(categories)
    if not path:  # None or ""
        raise ValueError(f"data.path is required for name='shapenet': {_LAYOUT}.")
    root = os.path.expanduser(str(path))
    if not os.path.isdir(root):
        raise ValueError(f"data.path={str(path)!r} is not a directory; expected {_LAYOUT}.")
    files: list[str] = []
    for name in names:
        folder = os.path.join(root, SHAPENET_SYNSETS[name], split)
        if not os.path.isdir(folder):
            raise ValueError(
                f"ShapeNet category {name!r} (synset {SHAPENET_SYNSETS[name]}) has no {split!r} "
                f"split: {folder} is missing. data.path={str(path)!r} must be {_LAYOUT}."
            )
        found = sorted(f for f in os.listdir(folder) if f.endswith(".npy"))
        if not found:
            raise ValueError(
                f"{folder} holds no .npy files (category {name!r}, split {split!r}); "
                f"data.path={str(path)!r} must be {_LAYOUT}."
            )
        files += [os.path.join(folder, f) for f in found]
    return files


def _load_points(file: str, min_points: int = 1) -> np.ndarray:
    points = np.load(file, allow_pickle=False)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] < min_points:
        raise ValueError(
            f"{file} holds an array of shape {points.shape}; expected (M, 3) points with "
            f"M >= {min_points} (ShapeNetCore.v2.PC15k models are (15000, 3))."
        )
    return points


_STATS_CACHE: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, float]] = {}
_STATS_LOCK = threading.Lock()


def _statistics_of(files: Sequence[str]) -> tuple[np.ndarray, float]:
    """Per-axis mean (3,) and the pooled std of all coordinates of the files, in float64,
    combined file by file (Chan et al.'s pairwise update, so no file is held twice)."""
    count = 0
    axis_sum = np.zeros(3)
    pooled_mean, pooled_m2 = 0.0, 0.0
    for file in files:
        p = _load_points(file).astype(np.float64)
        axis_sum += p.sum(axis=0)
        n_new = p.size
        mean_new = float(p.mean())
        m2_new = float(np.square(p - mean_new).sum())
        total = count * 3 + n_new
        delta = mean_new - pooled_mean
        pooled_m2 += m2_new + delta * delta * (count * 3) * n_new / total
        pooled_mean += delta * n_new / total
        count += p.shape[0]
    return axis_sum / count, math.sqrt(pooled_m2 / (count * 3))


def shapenet_statistics(path: str | None, categories: Sequence[str]) -> tuple[np.ndarray, float]:
    """PointFlow's global normalisation of the chosen categories: (per-axis mean float64 (3,),
    the std float of all coordinates pooled), over every point of every training model.

    Equal to `points.reshape(-1, 3).mean(0)` and `points.reshape(-1).std()` of all training
    points stacked (PointFlow's `all_points_mean` / `all_points_std` with
    normalize_per_shape=False, normalize_std_per_axis=False). Reads the whole train split
    once per process; the result is cached by (directory, categories).
    """
    names = resolve_categories(categories)
    files = shapenet_files(path, names, "train")
    key = (os.path.realpath(os.path.expanduser(str(path))), names)
    with _STATS_LOCK:
        cached = _STATS_CACHE.get(key)
    if cached is None:
        cached = _statistics_of(files)
        with _STATS_LOCK:
            _STATS_CACHE[key] = cached
    mean, std = cached
    return mean.copy(), std


class ShapeNetReader:
    """A ShapeNetCore.v2.PC15k split as a record source of the grain pipeline.

    Lists the split's files and computes (or takes from the cache) the train split's
    normalisation when built; `mean` (3,) and `std` are kept on the reader.
    """

    def __init__(
        self,
        path: str | None,
        categories: Sequence[str] = DEFAULT_CATEGORIES,
        split: str = "train",
        num_points: int = DEFAULT_NUM_POINTS["shapenet"],
    ):
        self.categories = resolve_categories(categories)
        self.split, self.num_points = split, int(num_points)
        self.files = shapenet_files(path, self.categories, split)
        self.mean, self.std = shapenet_statistics(path, self.categories)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_labels(self) -> bool:
        return False

    def record(self, index: int) -> np.ndarray:
        """The normalised points float32 (num_points, 3) of record `index`."""
        index = _check_record(index, len(self.files), self.split)
        points = _load_points(self.files[index], self.num_points)
        rng = np.random.default_rng([_SHAPENET_TAG, _SPLIT_TAGS[self.split], index])
        chosen = points[rng.permutation(points.shape[0])[: self.num_points]]
        return ((chosen.astype(np.float64) - self.mean) / self.std).astype(np.float32)

    def read(self, indices: np.ndarray) -> Batch:
        x = np.stack([self.record(int(i)) for i in indices]).reshape(-1, self.num_points, 3)
        return {"x": x, "mask": np.ones(x.shape[:2], bool)}


def open_reader(spec: dict[str, Any]) -> ShapesReader | SetMultiMNISTReader | ShapeNetReader:
    """The reader of a checked "point_clouds" spec (see `check_spec`)."""
    name, split, n = spec["name"], spec["split"], int(spec["num_points"])
    if name == "shapes":
        return ShapesReader(split, n)
    if name == "set_multimnist":
        return SetMultiMNISTReader(split, n)
    return ShapeNetReader(spec["path"], spec["categories"], split, n)


__all__ = [
    "DEFAULT_NUM_POINTS",
    "MULTIMNIST_MAX_POINTS",
    "POINT_CLOUD_SETS",
    "SHAPENET_SYNSETS",
    "SHAPE_FAMILIES",
    "SetMultiMNISTReader",
    "ShapeNetReader",
    "ShapesReader",
    "check_spec",
    "multimnist_canvas",
    "open_reader",
    "sample_surface",
    "set_multimnist_record",
    "shapenet_files",
    "shapenet_statistics",
    "shapes_record",
]
