"""The digits classifier and the Frechet distance in its features: held-out accuracy, the cache,
and distances that order real < slightly blurred < more blurred < noise."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import ndimage

from flowjax.data.images import load_digits
from flowjax.metrics import digits_classifier as dc


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def classifier(cache_dir):
    return dc.load_digits_classifier(cache_dir)  # trains and writes the cache


@pytest.fixture(scope="module")
def real_digits():
    return np.concatenate([load_digits("train")[0], load_digits("test")[0]])


def test_held_out_accuracy_and_cache(classifier, cache_dir):
    assert dc.accuracy(classifier, "test") > 0.95  # 360 held-out digits
    assert os.path.isfile(os.path.join(cache_dir, dc.CACHE_FILE))
    reloaded = dc.load_digits_classifier(cache_dir)  # read back, not retrained
    images = load_digits("test")[0][:20]
    np.testing.assert_array_equal(
        dc.digits_features(images, reloaded), dc.digits_features(images, classifier)
    )


def test_distance_orders_real_blurred_and_noise(classifier, real_digits):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(real_digits))
    half_a, half_b = real_digits[order[:898]], real_digits[order[898:]]

    def distance(images):
        return dc.digits_frechet_distance(images, half_b, classifier)

    real = distance(half_a)
    blurred = [
        distance(ndimage.gaussian_filter(half_a, sigma=(0, s, s, 0), mode="nearest"))
        for s in (0.5, 1.0)
    ]
    noise = distance(rng.uniform(-1, 1, half_a.shape))
    assert real < 0.5 * blurred[0] < blurred[0] < blurred[1] < noise
    assert real < 0.01 * noise
    # The full set against itself, as its own reference statistics: zero.
    assert abs(dc.digits_frechet_distance(real_digits, None, classifier)) < 1e-6


def test_bad_images_and_cache_are_rejected(classifier, tmp_path):
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 1\)"):
        dc.digits_frechet_distance(np.zeros((10, 16, 16, 1)), classifier=classifier)
    with pytest.raises(ValueError, match="N >= 2"):
        dc.digits_features(np.zeros((1, 8, 8)), classifier)
    with pytest.raises(ValueError, match="NaN"):
        dc.digits_features(np.full((4, 8, 8, 1), np.nan), classifier)
    np.savez(tmp_path / dc.CACHE_FILE, other=np.zeros(3))
    with pytest.raises(ValueError, match="Delete the file to retrain"):
        dc.load_digits_classifier(str(tmp_path))
