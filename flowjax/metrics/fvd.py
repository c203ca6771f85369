"""The Frechet Video Distance: the Frechet distance between Gaussians fitted to I3D features of
real and generated clips.

Unterthiner et al. (2018), "Towards Accurate Generative Models of Video: A New Metric &
Challenges", eq. (1): FVD = |mu_R - mu_G|^2 + tr(S_R + S_G - 2 (S_R S_G)^(1/2)), with (mu, S)
the mean and covariance of the 400 Kinetics logits of Inception-I3D (Carreira & Zisserman,
2017; `flowjax.models.i3d`, weights `i3d_pretrained_400.pt` via `flowjax.models.convert_i3d`)
averaged over time: the reference code's TF-Hub layer `RGB/inception_i3d/Mean:0`, the output of
the PyTorch port of TATS / VideoGPT / MeBT. The distance, the streaming statistics (Chan's
merge in float64) and the reference-statistics .npz files (`mu`, `sigma`) are those of FID:
`flowjax.metrics.frechet`.

Preprocessing (`preprocess_videos`), as TATS / MeBT: clips (B, T, H, W, C) with C 1 or 3, uint8
in [0, 255] or float in [-1, 1] (flowjax's convention) or [0, 1] (`value_range=(0, 1)`); float
clips are clipped and quantized to 8 bits (as when samples are saved as uint8, which TATS does
before scoring; `quantize=False` skips it); every frame is resized bilinearly (half-pixel
centres, no antialiasing: torch's `interpolate(..., align_corners=False)`, which TATS uses;
the original TF1 code's `resize_bilinear` samples without the half-pixel offset, a small
difference) to 224 x 224, grey made RGB, values 2 x / 255 - 1 in [-1, 1]. I3D needs at least 9
frames (16 in MeBT's FVD16, 128 in FVD128).

`fvd_feature_fn` is one jitted program per clip shape whose batch is split over the ("data",
"fsdp") axes of a flowjax mesh (weights replicated), as the FID features
(`flowjax.metrics.inception`); clips are checked on the host and the network traced (not
compiled) before the first batch runs, so a wrong shape or too few frames fails at once. The
mesh must hold only this process's devices (the default: every local device on "data"); in a
multi-process run each process scores its own clips and the statistics are merged with
`flowjax.metrics.frechet.merge_statistics`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from flowjax import parallel
from flowjax.metrics import frechet, inception

INPUT_SIZE = 224
VALUE_RANGES = ((-1.0, 1.0), (0.0, 1.0))
Reference = str | os.PathLike | tuple[np.ndarray, np.ndarray] | frechet.FeatureStatistics


def _check_value_range(value_range) -> tuple[float, float]:
    value_range = tuple(float(v) for v in value_range)
    if value_range not in VALUE_RANGES:
        raise ValueError(
            f"value_range must be (-1, 1) or (0, 1) for float clips (uint8 clips are read as "
            f"[0, 255]), got {value_range}."
        )
    return value_range


def check_videos(videos: np.ndarray, value_range=(-1.0, 1.0)) -> None:
    """ValueError unless `videos` are (B, T, H, W, C), B >= 1, C in (1, 3), uint8 or float in
    `value_range` (a slight overshoot is clipped)."""
    low_end, high_end = _check_value_range(value_range)
    if videos.ndim != 5 or videos.shape[-1] not in (1, 3) or 0 in videos.shape:
        raise ValueError(
            f"FVD expects clips of shape (B, T, H, W, C) with C 1 or 3 (channels last), got "
            f"{videos.shape}; a single clip needs a leading batch axis."
        )
    if videos.dtype == np.uint8:
        return
    if not np.issubdtype(videos.dtype, np.floating):
        raise ValueError(f"Clips must be float or uint8, got dtype {videos.dtype}.")
    low, high = float(np.min(videos)), float(np.max(videos))
    slack = 0.25 * (high_end - low_end)
    if not (np.isfinite(low) and np.isfinite(high)) or low < low_end - slack or high > high_end + slack:
        raise ValueError(
            f"FVD expects float clips in [{low_end:g}, {high_end:g}] (value_range), got values in "
            f"[{low}, {high}]; pass uint8 clips as dtype uint8."
        )


def preprocess_videos(
    videos: jax.Array,
    size: int | None = INPUT_SIZE,
    *,
    value_range=(-1.0, 1.0),
    quantize: bool = True,
) -> jax.Array:
    """Clips (B, T, H, W, C) -> float32 (B, T, size, size, 3) in [-1, 1] (module docstring);
    `size=None` keeps H, W. The frames go through the FID image preprocessing
    (`flowjax.metrics.inception.preprocess`)."""
    batch, frames, height, width, channels = videos.shape
    frames_2d = videos.reshape(batch * frames, height, width, channels)
    if videos.dtype != jnp.uint8 and tuple(value_range) == (0.0, 1.0):
        frames_2d = frames_2d.astype(jnp.float32) * 2.0 - 1.0
    frames_2d = inception.preprocess(frames_2d, size, quantize)
    return frames_2d.reshape(batch, frames, *frames_2d.shape[1:])


@functools.partial(jax.jit, static_argnames=("graphdef", "size", "value_range", "quantize"))
def _features(graphdef, state, videos, size, value_range, quantize):
    network = nnx.merge(graphdef, state)
    return network(preprocess_videos(videos, size, value_range=value_range, quantize=quantize))


def fvd_feature_fn(
    network: nnx.Module,
    *,
    mesh: Mesh | None = None,
    resize_to: int | None = INPUT_SIZE,
    value_range=(-1.0, 1.0),
    quantize: bool = True,
    feature_dim: int | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """`fn(videos) -> features (B, D)` on the host, for clips (B, T, H, W, C) (module docstring).

    `network` maps preprocessed clips (B, T, S, S, 3) in [-1, 1] to (B, D): the I3D of
    `flowjax.models.convert_i3d.load_i3d` (D = 400). The batch is split over the mesh's ("data",
    "fsdp") axes, padded up to a multiple of their size (the padding dropped from the result).
    `resize_to=None` skips the resize (only for tests: FVD is defined at 224). `feature_dim`,
    when given, is checked against the network's output before anything runs.
    """
    value_range = _check_value_range(value_range)
    mesh = inception.default_mesh() if mesh is None else mesh
    parts = int(np.prod([mesh.shape[axis] for axis in parallel.BATCH_AXES]))
    batch_sharding = parallel.batch_sharding(mesh)
    graphdef, state = nnx.split(network)
    state = jax.device_put(state, parallel.replicated(mesh))
    apply = functools.partial(
        _features, graphdef, size=resize_to, value_range=value_range, quantize=quantize
    )

    def features(videos) -> np.ndarray:
        videos = np.asarray(videos)
        check_videos(videos, value_range)
        count = videos.shape[0]
        padding = (-count) % parts
        if padding:
            videos = np.concatenate([videos, np.repeat(videos[-1:], padding, axis=0)])
        # Tracing only: the network's own shape checks (e.g. I3D's frame count) raise here.
        out = jax.eval_shape(apply, state, jax.ShapeDtypeStruct(videos.shape, videos.dtype))
        if out.ndim != 2 or (feature_dim is not None and out.shape[1] != feature_dim):
            raise ValueError(
                f"The network gives features of shape {out.shape}; FVD needs (B, "
                f"{feature_dim or 'D'}) (the reference statistics' dimension)."
            )
        return np.asarray(apply(state, jax.device_put(videos, batch_sharding)))[:count]

    return features


def fvd_features(network: nnx.Module, videos, batch_size: int = 16, **kwargs) -> np.ndarray:
    """Features (N, D) of the clips `videos` (N, T, H, W, C), `batch_size` clips per call.
    Other arguments: `fvd_feature_fn`."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"fvd_features expects clips (N, T, H, W, C), got shape {videos.shape}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    fn = fvd_feature_fn(network, **kwargs)
    return np.concatenate([fn(videos[i : i + batch_size]) for i in range(0, len(videos), batch_size)])


def fvd_statistics(
    network: nnx.Module,
    source: frechet.Batches,
    num_samples: int,
    *,
    batch_size: int = 16,
    key: jax.Array | None = None,
    **kwargs,
) -> frechet.FeatureStatistics:
    """Streaming feature statistics of `num_samples` clips: `source` is an iterable of
    (b, T, H, W, C) batches or a sampler `source(key, b)` (`flowjax.metrics.frechet.
    image_batches`). `.save(path)` writes reference statistics for later FVDs. Other
    arguments: `fvd_feature_fn`."""
    fn = fvd_feature_fn(network, **kwargs)
    return frechet.feature_statistics(fn, source, num_samples, batch_size, key)


def load_reference(reference: Reference) -> tuple[np.ndarray, np.ndarray] | frechet.FeatureStatistics:
    """Reference statistics as given (an .npz path is loaded and checked: FileNotFoundError
    naming a missing file)."""
    if isinstance(reference, (str, os.PathLike)):
        return frechet.load_reference_statistics(os.fspath(reference))
    return reference


def fvd(
    network: nnx.Module,
    source: frechet.Batches,
    num_samples: int,
    reference: Reference,
    *,
    batch_size: int = 16,
    key: jax.Array | None = None,
    **kwargs,
) -> float:
    """The FVD of `num_samples` clips of `source` (see `fvd_statistics`) against `reference`:
    an .npz with `mu` (D,) and `sigma` (D, D), a (mu, sigma) pair, or FeatureStatistics (e.g.
    of real clips). The reference is loaded, and checked against the network's feature
    dimension, before any clip is scored."""
    reference = load_reference(reference)
    dim = reference.dim if isinstance(reference, frechet.FeatureStatistics) else len(reference[0])
    stats = fvd_statistics(
        network, source, num_samples, batch_size=batch_size, key=key, feature_dim=dim, **kwargs
    )
    return frechet.frechet_distance_to_reference(stats, reference)
