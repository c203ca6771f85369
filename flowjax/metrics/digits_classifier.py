"""A Frechet distance for 8x8 digits, in the features of a small classifier: an offline
stand-in for FID. NOT comparable to FID or to any published number.

FID (Heusel et al., 2017, eq. 6) fits Gaussians to the features of an ImageNet Inception network,
which needs a weights file that cannot be fetched offline and is meaningless on 8x8 images.
For scikit-learn's digits (`flowjax.data.images.load_digits`: 1797 images, (8, 8, 1) in
[-1, 1]) this module trains instead a small classifier once (an MLP 64 -> 128 -> 64 -> 10 with
swish; full-batch AdamW on the "train" split from a fixed key, so the same weights on every run),
caches it, and reports the same Frechet distance
(`flowjax.metrics.frechet_distance`) between generated and real digits in its 64-d
penultimate features. The number depends on this classifier and on the sample sizes; it ranks
models trained on digits and falls as samples improve, nothing more.

Cache: `<cache_dir>/digits_classifier_v1.npz` (default ~/.cache/flowjax, or $FLOWJAX_CACHE),
written on first use (seconds on a CPU) and read afterwards.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from flowjax.data.images import DIGITS_SHAPE, load_digits
from flowjax.metrics import frechet
from flowjax.metrics.named_arrays import load_module, module_arrays

FEATURE_DIM = 64
HIDDEN_DIM = 128
CACHE_ENV = "FLOWJAX_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/flowjax"
CACHE_FILE = "digits_classifier_v1.npz"
TRAIN_STEPS = 300
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
SEED = 0


class DigitsClassifier(nnx.Module):
    """Images (B, 8, 8, 1) in [-1, 1] -> (features (B, 64), logits (B, 10))."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, HIDDEN_DIM, rngs=rngs)
        self.dense = nnx.Linear(HIDDEN_DIM, FEATURE_DIM, rngs=rngs)
        self.out = nnx.Linear(FEATURE_DIM, 10, rngs=rngs)

    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = nnx.swish(self.hidden(images.reshape(images.shape[0], -1)))
        features = nnx.swish(self.dense(h))
        return features, self.out(features)


def train_digits_classifier(seed: int = SEED, steps: int = TRAIN_STEPS) -> DigitsClassifier:
    """The classifier trained on the digits "train" split (full batch, one lax.scan)."""
    images, labels = load_digits("train")
    model = DigitsClassifier(rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model)
    optimizer = optax.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def loss(params):
        _, logits = nnx.merge(graphdef, params)(images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    @jax.jit
    def train(params):
        return jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)[0][0]

    return nnx.merge(graphdef, train(params))


def accuracy(classifier: DigitsClassifier, split: str = "test") -> float:
    """The fraction of a digits split that `classifier` labels correctly."""
    images, labels = load_digits(split)
    _, logits = _apply(classifier, images)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def load_digits_classifier(cache_dir: str | None = None) -> DigitsClassifier:
    """The cached classifier of `cache_dir` (see the module docstring), trained on first use."""
    cache_dir = os.path.expanduser(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)
    path = os.path.join(cache_dir, CACHE_FILE)
    if not os.path.isfile(path):
        classifier = train_digits_classifier()
        os.makedirs(cache_dir, exist_ok=True)
        temporary = path + f".tmp{os.getpid()}.npz"
        np.savez(temporary, **module_arrays(classifier))
        os.replace(temporary, path)
        return classifier
    return load_module(
        lambda: DigitsClassifier(rngs=nnx.Rngs(0)), path, "Delete the file to retrain the classifier."
    )


@functools.lru_cache(maxsize=4)
def _jitted_apply(graphdef):
    return jax.jit(lambda state, images: nnx.merge(graphdef, state)(images))


def _apply(classifier: DigitsClassifier, images) -> tuple[np.ndarray, np.ndarray]:
    graphdef, state = nnx.split(classifier)
    features, logits = _jitted_apply(graphdef)(state, jnp.asarray(images, jnp.float32))
    return np.asarray(features), np.asarray(logits)


def check_digit_images(images) -> np.ndarray:
    """`images` as float (N, 8, 8, 1), clipped to [-1, 1]; (N, 8, 8) is accepted too.

    Raises a ValueError for any other shape, N < 2, or non-finite values."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != DIGITS_SHAPE or images.shape[0] < 2:
        raise ValueError(
            f"Expected digit images of shape (N, 8, 8, 1) or (N, 8, 8) in [-1, 1] with N >= 2 "
            f"(the 8x8 digits of flowjax.data.images.load_digits), got {np.shape(images)}."
        )
    if not np.all(np.isfinite(images)):
        raise ValueError("Digit images contain NaN or inf.")
    return np.clip(images.astype(np.float32), -1.0, 1.0)


def digits_features(images, classifier: DigitsClassifier | None = None) -> np.ndarray:
    """The classifier's 64-d penultimate features (N, 64) of digit images (N, 8, 8, 1)."""
    images = check_digit_images(images)
    classifier = load_digits_classifier() if classifier is None else classifier
    return _apply(classifier, images)[0]


def digits_classes(images, classifier: DigitsClassifier | None = None) -> np.ndarray:
    """The classifier's predicted class (N,) of digit images (N, 8, 8, 1) in [-1, 1]."""
    images = check_digit_images(images)
    classifier = load_digits_classifier() if classifier is None else classifier
    return np.argmax(_apply(classifier, images)[1], axis=-1)


def digits_frechet_distance(
    images,
    reference=None,
    classifier: DigitsClassifier | None = None,
) -> float:
    """The Frechet distance between digit images (N, 8, 8, 1) in [-1, 1] and the real digits,
    in the classifier's features. NOT an FID: comparable only to other values of this function.

    reference: None (all 1797 real digits), real images (M, 8, 8, 1), or FeatureStatistics.
    """
    images = check_digit_images(images)
    if reference is None:
        reference = np.concatenate([load_digits("train")[0], load_digits("test")[0]])
    if not isinstance(reference, frechet.FeatureStatistics):
        reference = check_digit_images(reference)
    classifier = load_digits_classifier() if classifier is None else classifier
    stats = frechet.FeatureStatistics.from_features(digits_features(images, classifier))
    if not isinstance(reference, frechet.FeatureStatistics):
        reference = frechet.FeatureStatistics.from_features(digits_features(reference, classifier))
    return frechet.frechet_distance_to_reference(stats, reference)
