"""Calibration of the digits-classifier Frechet distance (`flowjax.metrics.digits_classifier`).

The distance is an offline stand-in for FID on 8x8 digits (Heusel et al., 2017, eq. 6, in the
64-d features of a small classifier instead of Inception's): it is NOT comparable to FID. This
script prints what its values mean on this data: the classifier's held-out accuracy, the
distance between two random halves of the real digits, and the distance of degraded copies of
one half (Gaussian blur, additive noise, uniform noise) to the other half.

    python experiments/metrics/digits_frechet_calibration.py [--cache_dir DIR]

With a fresh cache directory it also times the classifier's training.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from scipy import ndimage

from flowjax.data.images import load_digits
from flowjax.metrics import digits_classifier as dc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()
    cache_dir = args.cache_dir or tempfile.mkdtemp()
    fresh = not os.path.exists(os.path.join(cache_dir, dc.CACHE_FILE))
    start = time.perf_counter()
    classifier = dc.load_digits_classifier(cache_dir)
    load_seconds = time.perf_counter() - start

    real = np.concatenate([load_digits("train")[0], load_digits("test")[0]])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(real))
    half_a, half_b = real[order[: len(real) // 2]], real[order[len(real) // 2 :]]

    def distance(images):
        return dc.digits_frechet_distance(images, half_b, classifier)

    rows = {"real half vs real half": distance(half_a)}
    for sigma in (0.5, 1.0):
        blurred = ndimage.gaussian_filter(half_a, sigma=(0, sigma, sigma, 0), mode="nearest")
        rows[f"Gaussian blur sigma={sigma} px"] = distance(blurred)
    for scale in (0.1, 0.3):
        noisy = np.clip(half_a + scale * rng.standard_normal(half_a.shape), -1, 1)
        rows[f"additive N(0, {scale}^2) noise"] = distance(noisy)
    rows["uniform noise in [-1, 1]"] = distance(rng.uniform(-1, 1, half_a.shape))
    result = {
        "test_accuracy": dc.accuracy(classifier, "test"),
        ("train_and_cache_seconds" if fresh else "load_seconds"): load_seconds,
        "halves": [len(half_a), len(half_b)],
        "distances": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
