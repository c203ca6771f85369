"""Small paired (input, target) data sets that run offline: supervised tasks for neural ODEs.

Simulation-free training of neural ODEs on paired data (Kim et al., 2024, "Simulation-Free
Training of Neural ODEs on Paired Data"): the method learns a deterministic map x -> y, so its
data are pairs. These sets ship with flowjax or with scikit-learn (no download):

crossing_pairs
    The paper's 1-D illustration: four pairs x -> y = -x with x in {-3, -1, 1, 3}, so that
    the straight paths (1 - t) x + t y all cross at 0 at t = 1/2. A flow on the line keeps
    the order of its points, so no flow in data space maps the pairs; one in a learned
    embedding space can. Regression (target dimension 1); the test split is the train split.
moons
    `sklearn.datasets.make_moons` (noise 0.1): 2-D points, 2 classes; 2000 train and 1000
    test points drawn with fixed seeds.
diabetes
    `sklearn.datasets.load_diabetes`: 10 features, a scalar disease-progression target; 442
    patients split 353 / 89 by a fixed permutation. Features and target are standardised with
    the training split's mean and standard deviation; `target_scale(name)` (the target's
    standard deviation, 76.24) turns errors back into the original units.

`tabular_arrays(name, split)` returns (x float32 (n, d), y) with y int32 labels (n,) for
classification or float32 targets (n, k) for regression; `TabularReader` serves them to the
grain pipeline as {"x": (b, d), "label": (b,)} or {"x": (b, d), "target": (b, k)}.
(scikit-learn's digits, also a classification set of the method, are the image source
"digits" of `flowjax.data.images`.)
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

Batch = dict[str, np.ndarray]
SPLITS = ("train", "test")
_SPLIT_SEED = 20240601  # the fixed permutation of the train / test split


@dataclasses.dataclass(frozen=True)
class TabularSet:
    """What a tabular set is: its task, input size, classes or target size and target scale.

    Attributes:
      task: "classification" (integer labels) or "regression" (float targets).
      input_dim: features per example.
      num_classes: label count of a classification set, else None.
      target_dim: entries of a regression target, else None.
    """

    task: str
    input_dim: int
    num_classes: int | None = None
    target_dim: int | None = None


def _split(n: int, test_size: int, split: str) -> np.ndarray:
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n)
    return np.sort(perm[test_size:] if split == "train" else perm[:test_size])


def _crossing_pairs(split: str) -> tuple[np.ndarray, np.ndarray]:
    del split  # four pairs: the test split is the train split
    x = np.asarray([[-3.0], [-1.0], [1.0], [3.0]], np.float32)
    return x, -x


def _moons(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    n, seed = (2000, 0) if split == "train" else (1000, 1)
    x, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return x.astype(np.float32), y.astype(np.int32)


@functools.lru_cache(maxsize=None)
def _diabetes_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x, y[:, None]


def _diabetes_stats() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = _diabetes_raw()
    train = _split(len(x), 89, "train")
    return x[train].mean(0), x[train].std(0), y[train].mean(0), y[train].std(0)


def _diabetes(split: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _diabetes_raw()
    x_mean, x_std, y_mean, y_std = _diabetes_stats()
    index = _split(len(x), 89, split)
    inputs = ((x[index] - x_mean) / x_std).astype(np.float32)
    return inputs, ((y[index] - y_mean) / y_std).astype(np.float32)


_LOADERS = {
    "crossing_pairs": _crossing_pairs,
    "moons": _moons,
    "diabetes": _diabetes,
}

TABULAR_SETS: dict[str, TabularSet] = {
    "crossing_pairs": TabularSet("regression", 1, target_dim=1),
    "moons": TabularSet("classification", 2, num_classes=2),
    "diabetes": TabularSet("regression", 10, target_dim=1),
}
"""The offline paired sets by name."""


def tabular_set(name: str) -> TabularSet:
    """The description of set `name`, or a ValueError listing the sets."""
    if name not in TABULAR_SETS:
        raise ValueError(
            f"Unknown tabular data set {name!r}; expected one of {sorted(TABULAR_SETS)}."
        )
    return TABULAR_SETS[name]


def target_scale(name: str) -> float:
    """The standard deviation of the original regression target of set `name` (1 for sets
    whose targets are not standardised): RMSE in the original units is the RMSE of the
    standardised targets times this."""
    tabular_set(name)
    return float(_diabetes_stats()[3][0]) if name == "diabetes" else 1.0


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Tabular data split must be one of {SPLITS}, got {split!r}.")


@functools.lru_cache(maxsize=None)
def tabular_arrays(name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (n, d), y): int32 labels (n,) or float32 standardised targets (n, k)."""
    tabular_set(name)
    check_split(split)
    x, y = _LOADERS[name](split)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


class TabularReader:
    """A tabular split as a record source of the grain pipeline (`flowjax.data.pipeline`)."""

    def __init__(self, name: str, split: str = "train"):
        self.info = tabular_set(name)
        check_split(split)
        self.name, self.split = name, split
        self._len = len(tabular_arrays(name, split)[0])

    def __len__(self) -> int:
        return self._len

    @property
    def has_labels(self) -> bool:
        return self.info.task == "classification"

    def read(self, indices: np.ndarray) -> Batch:
        x, y = tabular_arrays(self.name, self.split)
        key = "label" if self.has_labels else "target"
        return {"x": x[indices], key: y[indices]}
