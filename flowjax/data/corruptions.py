"""Image corruptions at five severities (CIFAR-10-C style) and out-of-distribution inputs.

Hendrycks & Dietterich, 2019, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations" (ICLR), section 3: each corruption has one parameter per severity 1..5,
applied to pixels in [0, 1]; here images in [-1, 1] (the pipeline's range) are mapped to
[0, 1], corrupted and mapped back, clipped. Severity parameters (CIFAR-10-C's where they
transfer to 8x8 grayscale digits):

  gaussian_noise  x + N(0, c^2),         c = 0.04, 0.06, 0.08, 0.09, 0.10 (CIFAR-10-C)
  shot_noise      Poisson(c x) / c,      c = 500, 250, 100, 75, 50 (CIFAR-10-C)
  impulse_noise   salt and pepper on a fraction c of pixels, c = 0.01, 0.02, 0.03, 0.05, 0.07
                  (CIFAR-10-C)
  gaussian_blur   Gaussian filter of std c pixels, c = 0.4, 0.6, 0.7, 0.8, 1.0 (CIFAR-10-C's
                  values in pixels; on 8x8 digits a pixel is 4 CIFAR pixels, so the blur is
                  relatively 4x stronger: adapted on purpose, a quarter would barely change
                  an 8x8 image)
  contrast        (x - mean) c + mean,   c = 0.75, 0.5, 0.4, 0.3, 0.15 (CIFAR-10-C)
  brightness      x + c,                 c = 0.05, 0.1, 0.15, 0.2, 0.3 (CIFAR-10-C's HSV value
                  shift, applied to the gray level)
  pixelate        box-downsample to c x c pixels and repeat back, c = 7, 6, 5, 4, 3 for 8x8
                  (adapted: CIFAR-10-C's factors 0.95..0.65 give 8, 7, 7, 6, 5 on 8 pixels,
                  not monotone at severity 1-3)

Random corruptions are deterministic given a seed (`numpy.random.default_rng(seed)`).
CIFAR-10-C itself (TFDS "cifar10_corrupted/<corruption>_<severity>", local only) is read by
`cifar10_corrupted_config`.

Out-of-distribution inputs (`ood_images`) for digits: "uniform_noise" (pixels uniform in
[-1, 1]), "inverted" (held-out digits with their gray levels negated, -x) and
"gaussian_blobs" (a bright isotropic Gaussian blob of random centre and width on black).

Shapes: images (N, H, W, C) float in [-1, 1] -> the same shape.
"""

from __future__ import annotations

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)
PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500.0, 250.0, 100.0, 75.0, 50.0),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "pixelate": (7, 6, 5, 4, 3),
}
"""The parameter of each corruption at severities 1..5 (module docstring)."""
CORRUPTIONS = tuple(PARAMETERS)
CIFAR10_C = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur",
             "frosted_glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
             "brightness", "contrast", "elastic", "pixelate", "jpeg_compression")
"""The 15 standard corruptions of CIFAR-10-C (TFDS names)."""
OOD_SETS = ("uniform_noise", "inverted", "gaussian_blobs")


def _check(images: np.ndarray, name: str, severity: int) -> None:
    if name not in PARAMETERS:
        raise ValueError(f"Unknown corruption {name!r}; expected one of {CORRUPTIONS}.")
    if severity not in SEVERITIES:
        raise ValueError(f"Corruption severities are {SEVERITIES}, got {severity}.")
    if images.ndim != 4:
        raise ValueError(f"Corruptions take images (N, H, W, C), got shape {images.shape}.")


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`images` (N, H, W, C) in [-1, 1] under corruption `name` at `severity` (1..5)."""
    from scipy import ndimage

    images = np.asarray(images, np.float32)
    _check(images, name, severity)
    c = PARAMETERS[name][severity - 1]
    rng = np.random.default_rng(seed)
    x = (images + 1.0) / 2.0
    if name == "gaussian_noise":
        x = x + rng.normal(0.0, c, x.shape)
    elif name == "shot_noise":
        x = rng.poisson(np.clip(x, 0, 1) * c) / c
    elif name == "impulse_noise":
        hit = rng.random(x.shape) < c
        x = np.where(hit, rng.integers(0, 2, x.shape).astype(np.float32), x)
    elif name == "gaussian_blur":
        x = ndimage.gaussian_filter(x, sigma=(0, c, c, 0), mode="reflect")
    elif name == "contrast":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * c + mean
    elif name == "brightness":
        x = x + c
    else:  # pixelate
        n, h, w, ch = x.shape
        rows = (np.arange(h) * int(c)) // h
        cols = (np.arange(w) * int(c)) // w
        small = np.zeros((n, int(c), int(c), ch), np.float32)
        counts = np.zeros((int(c), int(c)), np.float32)
        np.add.at(counts, (rows[:, None], cols[None, :]), 1.0)
        for i in range(h):
            for j in range(w):
                small[:, rows[i], cols[j]] += x[:, i, j]
        small /= counts[None, :, :, None]
        x = small[:, rows][:, :, cols]
    return (np.clip(x, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def ood_images(name: str, heldout: np.ndarray, seed: int = 0) -> np.ndarray:
    """As many out-of-distribution images as `heldout` (N, H, W, C) of kind `name`
    (module docstring), in [-1, 1]."""
    heldout = np.asarray(heldout, np.float32)
    rng = np.random.default_rng(seed)
    if name == "uniform_noise":
        return rng.uniform(-1.0, 1.0, heldout.shape).astype(np.float32)
    if name == "inverted":
        return -heldout
    if name == "gaussian_blobs":
        n, h, w, c = heldout.shape
        centre = rng.uniform(0, [h - 1, w - 1], (n, 2))
        width = rng.uniform(0.8, 2.5, (n, 1, 1))
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        blob = np.exp(-((ii - centre[:, :1, None]) ** 2 + (jj - centre[:, 1:, None]) ** 2)
                      / (2 * width**2))
        return np.repeat((2 * blob - 1)[..., None], c, axis=-1).astype(np.float32)
    raise ValueError(f"Unknown out-of-distribution set {name!r}; expected one of {OOD_SETS} "
                     "or 'tfds:<name>' for a prepared TFDS image dataset.")


def cifar10_corrupted_config(name: str, severity: int, data_dir: str | None) -> dict:
    """The `config.data` of CIFAR-10-C corruption `name` at `severity` (TFDS
    "cifar10_corrupted/<name>_<severity>", test split, labelled); the pipeline raises a clear
    error when it is not prepared in `data_dir` (`tfds build cifar10_corrupted`)."""
    if name not in CIFAR10_C or severity not in SEVERITIES:
        raise ValueError(f"CIFAR-10-C has corruptions {CIFAR10_C} at severities {SEVERITIES}, "
                         f"got {name!r} at {severity}.")
    return dict(source="tfds", name=f"cifar10_corrupted/{name}_{severity}", split="test",
                data_dir=data_dir, label_key="label", random_flip=False)
