"""The FID Inception network (InceptionV3) in Flax NNX, loaded from a local weights file.

FID (Heusel et al., 2017, eq. 6) is the Frechet distance between Gaussians fitted to the 2048-d
pool_3 features of the Inception network of Szegedy et al. (2016, "Rethinking the Inception
Architecture"), in the exact variant of TensorFlow's 2015-12-05 graph that the FID reference
code uses; the Inception Score (Salimans et al., 2016) uses the same network's 1008-way logits
(`flowjax.metrics.inception_score`). The variant differs from the usual InceptionV3 in its blocks
(as ported in pytorch-fid): the average pools of the A, C and first E blocks ignore the zero
padding (TensorFlow's `count_include_pad=False`) and the last E block pools with a max, not an
average. Convolutions have no bias and are followed by batch norm (eps = 1e-3) and ReLU.

Input: images (B, H, W, C) in [-1, 1] (flowjax's image convention; C = 1 is repeated to 3,
uint8 images in [0, 255] are accepted too). By default they are clipped and quantized to 8 bits
(as if saved as PNG, the usual FID protocol) and resized bilinearly (half-pixel centres, no
antialiasing, as torch's `interpolate(..., align_corners=False)`) to 299 x 299. pytorch-fid maps
[0, 1] images to [-1, 1] before the network, so [-1, 1] images go in unchanged here.

Weights: `inception_fid.npz`, made once from pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
by `python flowjax/metrics/convert_inception.py` (see that file; torch is needed only there).
`load_inception` checks the file before anything is built or compiled.

Feature extraction (`inception_feature_fn`) is one jitted program whose batch is split over the
("data", "fsdp") axes of a flowjax mesh (`flowjax.parallel`), the weights replicated.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh

from flowjax.metrics import frechet
from flowjax.metrics.inception_score import ScoreStatistics
from flowjax.metrics.named_arrays import load_module
from flowjax import parallel

FEATURE_DIM = 2048
NUM_LOGITS = 1008
INPUT_SIZE = 299
MIN_INPUT_SIZE = 75
"""The smallest input that the network's strided layers reduce to a 1 x 1 map."""

TORCH_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCH_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + TORCH_WEIGHTS_FILE
)
WEIGHTS_ENV = "FLOWJAX_INCEPTION_WEIGHTS"
DEFAULT_WEIGHTS_PATH = "~/.cache/flowjax/inception_fid.npz"


class ConvBN(nnx.Module):
    """Convolution (no bias), batch norm with running statistics (eps 1e-3), ReLU."""

    def __init__(self, cin, cout, kernel, *, stride=1, padding=(0, 0), rngs: nnx.Rngs):
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.conv = nnx.Conv(
            cin,
            cout,
            kernel_size=kernel,
            strides=stride,
            padding=[(padding[0], padding[0]), (padding[1], padding[1])],
            use_bias=False,
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(cout, epsilon=1e-3, use_running_average=True, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.bn(self.conv(x)))


def _avg_pool_same(x):
    """3x3 stride-1 average over the unpadded neighbours (TensorFlow's SAME average pool)."""
    return nnx.avg_pool(x, (3, 3), strides=(1, 1), padding="SAME", count_include_pad=False)


def _max_pool_same(x):
    return nnx.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_reduce(x):
    return nnx.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nnx.Module):
    """35x35 block (Mixed_5b/c/d): 64 + 64 + 96 + pool_features channels."""

    def __init__(self, cin, pool_features, *, rngs):
        self.branch1x1 = ConvBN(cin, 64, 1, rngs=rngs)
        self.branch5x5_1 = ConvBN(cin, 48, 1, rngs=rngs)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=(2, 2), rngs=rngs)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=(1, 1), rngs=rngs)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=(1, 1), rngs=rngs)
        self.branch_pool = ConvBN(cin, pool_features, 1, rngs=rngs)

    def __call__(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(_avg_pool_same(x))
        return jnp.concatenate([self.branch1x1(x), b5, b3, pool], axis=-1)


class InceptionB(nnx.Module):
    """35 -> 17 reduction (Mixed_6a): 384 + 96 + cin channels."""

    def __init__(self, cin, *, rngs):
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2, rngs=rngs)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=(1, 1), rngs=rngs)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2, rngs=rngs)

    def __call__(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return jnp.concatenate([self.branch3x3(x), b3, _max_pool_reduce(x)], axis=-1)


class InceptionC(nnx.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b-e): 4 x 192 channels."""

    def __init__(self, cin, c7, *, rngs):
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = ConvBN(cin, 192, 1, rngs=rngs)
        self.branch7x7_1 = ConvBN(cin, c7, 1, rngs=rngs)
        self.branch7x7_2 = ConvBN(c7, c7, row[0], padding=row[1], rngs=rngs)
        self.branch7x7_3 = ConvBN(c7, 192, col[0], padding=col[1], rngs=rngs)
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1, rngs=rngs)
        self.branch7x7dbl_2 = ConvBN(c7, c7, col[0], padding=col[1], rngs=rngs)
        self.branch7x7dbl_3 = ConvBN(c7, c7, row[0], padding=row[1], rngs=rngs)
        self.branch7x7dbl_4 = ConvBN(c7, c7, col[0], padding=col[1], rngs=rngs)
        self.branch7x7dbl_5 = ConvBN(c7, 192, row[0], padding=row[1], rngs=rngs)
        self.branch_pool = ConvBN(cin, 192, 1, rngs=rngs)

    def __call__(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = layer(bd)
        pool = self.branch_pool(_avg_pool_same(x))
        return jnp.concatenate([self.branch1x1(x), b7, bd, pool], axis=-1)


class InceptionD(nnx.Module):
    """17 -> 8 reduction (Mixed_7a): 320 + 192 + cin channels."""

    def __init__(self, cin, *, rngs):
        self.branch3x3_1 = ConvBN(cin, 192, 1, rngs=rngs)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2, rngs=rngs)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1, rngs=rngs)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3), rngs=rngs)
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0), rngs=rngs)
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2, rngs=rngs)

    def __call__(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return jnp.concatenate([b3, b7, _max_pool_reduce(x)], axis=-1)


class InceptionE(nnx.Module):
    """8x8 block with expanded 1x3 / 3x1 outputs (Mixed_7b: average pool, Mixed_7c: max
    pool): 320 + 768 + 768 + 192 = 2048 channels."""

    def __init__(self, cin, pool, *, rngs):
        if pool not in ("avg", "max"):
            raise ValueError(f"InceptionE pool must be 'avg' or 'max', got {pool!r}.")
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1, rngs=rngs)
        self.branch3x3_1 = ConvBN(cin, 384, 1, rngs=rngs)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1, rngs=rngs)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=(1, 1), rngs=rngs)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
        self.branch_pool = ConvBN(cin, 192, 1, rngs=rngs)

    def __call__(self, x):
        h3 = self.branch3x3_1(x)
        hd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool_same(x) if self.pool == "avg" else _max_pool_same(x)
        return jnp.concatenate(
            [
                self.branch1x1(x),
                self.branch3x3_2a(h3),
                self.branch3x3_2b(h3),
                self.branch3x3dbl_3a(hd),
                self.branch3x3dbl_3b(hd),
                self.branch_pool(pooled),
            ],
            axis=-1,
        )


class InceptionV3(nnx.Module):
    """The FID Inception network. `__call__(x)` maps preprocessed images x (B, S, S, 3) in
    [-1, 1], S >= 75 (299 for FID), to (pool (B, 2048), logits (B, 1008)).

    Attribute names are those of the standard weights file in lower case (Mixed_5b ->
    mixed_5b), so that `convert_inception.py` maps every tensor by name."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2, rngs=rngs)
        self.conv2d_2a_3x3 = ConvBN(32, 32, 3, rngs=rngs)
        self.conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=(1, 1), rngs=rngs)
        self.conv2d_3b_1x1 = ConvBN(64, 80, 1, rngs=rngs)
        self.conv2d_4a_3x3 = ConvBN(80, 192, 3, rngs=rngs)
        self.mixed_5b = InceptionA(192, 32, rngs=rngs)
        self.mixed_5c = InceptionA(256, 64, rngs=rngs)
        self.mixed_5d = InceptionA(288, 64, rngs=rngs)
        self.mixed_6a = InceptionB(288, rngs=rngs)
        self.mixed_6b = InceptionC(768, 128, rngs=rngs)
        self.mixed_6c = InceptionC(768, 160, rngs=rngs)
        self.mixed_6d = InceptionC(768, 160, rngs=rngs)
        self.mixed_6e = InceptionC(768, 192, rngs=rngs)
        self.mixed_7a = InceptionD(768, rngs=rngs)
        self.mixed_7b = InceptionE(1280, "avg", rngs=rngs)
        self.mixed_7c = InceptionE(2048, "max", rngs=rngs)
        self.fc = nnx.Linear(FEATURE_DIM, NUM_LOGITS, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.conv2d_2b_3x3(self.conv2d_2a_3x3(self.conv2d_1a_3x3(x)))
        x = _max_pool_reduce(x)
        x = _max_pool_reduce(self.conv2d_4a_3x3(self.conv2d_3b_1x1(x)))
        for block in (
            self.mixed_5b,
            self.mixed_5c,
            self.mixed_5d,
            self.mixed_6a,
            self.mixed_6b,
            self.mixed_6c,
            self.mixed_6d,
            self.mixed_6e,
            self.mixed_7a,
            self.mixed_7b,
            self.mixed_7c,
        ):
            x = block(x)
        pool = jnp.mean(x, axis=(1, 2))
        return pool, self.fc(pool)


def preprocess(images: jax.Array, size: int | None = INPUT_SIZE, quantize: bool = True):
    """Images (B, H, W, C) in [-1, 1] (or uint8) -> (B, size, size, 3) float32 in [-1, 1]:
    8-bit quantization (when `quantize`), grey -> RGB, bilinear resize to `size` (None: keep)."""
    if images.dtype == jnp.uint8:
        images = images.astype(jnp.float32) / 127.5 - 1.0
    else:
        images = jnp.clip(images.astype(jnp.float32), -1.0, 1.0)
        if quantize:
            images = jnp.round((images + 1.0) * 127.5) / 127.5 - 1.0
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    if size is not None and images.shape[1:3] != (size, size):
        images = jax.image.resize(
            images, (images.shape[0], size, size, 3), method="bilinear", antialias=False
        )
    return images


def check_images(images: np.ndarray, size: int | None) -> None:
    """Raises a ValueError unless `images` are (B, H, W, 1 or 3), uint8 or float in [-1, 1]."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            f"Inception expects images of shape (B, H, W, C) with C in (1, 3) and B >= 1, "
            f"got {images.shape}."
        )
    spatial = images.shape[1:3] if size is None else (size, size)
    if min(spatial) < MIN_INPUT_SIZE:
        raise ValueError(
            f"Inception needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} after resizing, "
            f"got {spatial} (resize_to={size})."
        )
    if images.dtype == np.uint8:
        return
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"Images must be float in [-1, 1] or uint8, got dtype {images.dtype}.")
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1.5 or high > 1.5:
        raise ValueError(
            f"Inception expects float images in [-1, 1] (slight overshoot is clipped), got values "
            f"in [{low}, {high}]; pass uint8 images as dtype uint8."
        )


def weights_path(path: str | None = None) -> str:
    """The weights file: `path`, else $FLOWJAX_INCEPTION_WEIGHTS, else DEFAULT_WEIGHTS_PATH."""
    return os.path.expanduser(path or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_PATH)


def require_weights(path: str | None = None) -> str:
    """The resolved weights path; FileNotFoundError saying how to make it if it is missing."""
    resolved = weights_path(path)
    if not os.path.isfile(resolved):
        raise FileNotFoundError(
            f"FID Inception weights not found at {resolved!r}. Download pytorch-fid's "
            f"{TORCH_WEIGHTS_FILE} ({TORCH_WEIGHTS_URL}) on a machine with internet access, then "
            f"convert it (needs torch): python flowjax/metrics/convert_inception.py "
            f"{TORCH_WEIGHTS_FILE} {resolved} ; or pass weights=... / set ${WEIGHTS_ENV}."
        )
    return resolved


def check_reference(
    reference: str | os.PathLike | tuple[np.ndarray, np.ndarray] | frechet.FeatureStatistics | None,
) -> tuple[np.ndarray, np.ndarray] | frechet.FeatureStatistics | None:
    """The reference statistics of FID (a path is loaded); a ValueError unless they are
    2048-dimensional, a FileNotFoundError naming a missing file."""
    if isinstance(reference, (str, os.PathLike)):
        reference = frechet.load_reference_statistics(os.fspath(reference))
    if reference is not None:
        is_stats = isinstance(reference, frechet.FeatureStatistics)
        dim = reference.dim if is_stats else len(reference[0])
        if dim != FEATURE_DIM:
            raise ValueError(f"Reference statistics have dimension {dim}, FID needs {FEATURE_DIM}.")
    return reference


def load_inception(path: str | None = None) -> InceptionV3:
    """The InceptionV3 with the converted FID weights of `path` (see `weights_path`)."""
    return load_module(
        lambda: InceptionV3(rngs=nnx.Rngs(0)),
        require_weights(path),
        "Convert pytorch-fid's weights with flowjax/metrics/convert_inception.py.",
    )


def default_mesh() -> Mesh:
    """A flowjax mesh with every local device (this process's) on the "data" axis."""
    devices = np.asarray(jax.local_devices()).reshape(-1, 1, 1)
    return Mesh(devices, parallel.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def inception_feature_fn(
    model: InceptionV3,
    *,
    mesh: Mesh | None = None,
    resize_to: int | None = INPUT_SIZE,
    quantize: bool = True,
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`fn(images) -> (pool (B, 2048), logits (B, 1008))` as host arrays.

    The batch is split over the mesh's ("data", "fsdp") axes (padded up to a multiple of their
    size, the padding dropped from the result), the weights replicated; images are checked on
    the host (`check_images`) before anything is compiled. `resize_to=None` skips the resize
    (only for tests on small inputs: FID is defined at 299). Each call takes the whole batch on
    the host and returns all its features there, so the mesh must hold only this process's
    devices (the default mesh does): in a multi-process run each process can score the images
    it holds.
    """
    mesh = default_mesh() if mesh is None else mesh
    parts = int(np.prod([mesh.shape[axis] for axis in parallel.BATCH_AXES]))
    batch_sharding = parallel.batch_sharding(mesh)
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, parallel.replicated(mesh))

    @jax.jit
    def apply(state, images):
        network = nnx.merge(graphdef, state)
        return network(preprocess(images, resize_to, quantize))

    def features(images) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        check_images(images, resize_to)
        count = images.shape[0]
        padding = (-count) % parts
        if padding:
            images = np.concatenate([images, np.repeat(images[-1:], padding, axis=0)])
        pool, logits = apply(state, jax.device_put(images, batch_sharding))
        return np.asarray(pool)[:count], np.asarray(logits)[:count]

    return features


def inception_statistics(
    source: frechet.Batches,
    num_samples: int,
    *,
    batch_size: int = 250,
    key: jax.Array | None = None,
    weights: str | None = None,
    mesh: Mesh | None = None,
    num_splits: int = 10,
    feature_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[frechet.FeatureStatistics, ScoreStatistics]:
    """Streaming pool_3 statistics and Inception Score statistics of `num_samples` images.

    `source` is an iterable of (b, H, W, C) image batches or a sampler `source(key, b)` (see
    `flowjax.metrics.frechet.image_batches`). `feature_fn` defaults to
    `inception_feature_fn(load_inception(weights), mesh=mesh)`. `.save(path)` on the first
    result writes reference statistics for later FIDs.

    In a multi-process run every process sees the same batches (the sampler's output gathered
    from all devices) and scores only its own contiguous part of each, on its own devices; the
    statistics are then merged over the processes (Chan's merge in process order, sums for the
    Inception Score), so every process returns those of all `num_samples` images.
    """
    score_stats = ScoreStatistics.empty(num_samples, NUM_LOGITS, num_splits)  # checks the counts
    pool_stats = frechet.FeatureStatistics.empty(FEATURE_DIM)
    fn = feature_fn or inception_feature_fn(load_inception(weights), mesh=mesh)
    rank, processes, start = jax.process_index(), jax.process_count(), 0
    for batch in frechet.image_batches(source, num_samples, batch_size, key):
        size = len(batch)
        lo, hi = rank * size // processes, (rank + 1) * size // processes
        if hi > lo:
            pool, logits = fn(batch[lo:hi])
            pool_stats = pool_stats.update(pool)
            score_stats = score_stats.update_logits(logits, start + lo)
        start += size
    if processes > 1:
        pool_stats, score_stats = merge_over_processes(pool_stats, score_stats)
    return pool_stats, score_stats


def merge_over_processes(
    pool_stats: frechet.FeatureStatistics, score_stats: ScoreStatistics
) -> tuple[frechet.FeatureStatistics, ScoreStatistics]:
    """Every process's statistics of its own images merged into those of all of them (the
    same result on every process)."""
    counts = parallel.allgather_host(np.asarray([pool_stats.count, score_stats.seen]))
    means, m2s = parallel.allgather_host(pool_stats.mean), parallel.allgather_host(pool_stats.m2)
    prob_sums = parallel.allgather_host(score_stats.prob_sums)
    neg_entropy_sums = parallel.allgather_host(score_stats.neg_entropy_sums)
    pools = [frechet.FeatureStatistics(int(c), m, v) for (c, _), m, v in zip(counts, means, m2s)]
    scores = [
        ScoreStatistics(score_stats.total, int(seen), p, e)
        for (_, seen), p, e in zip(counts, prob_sums, neg_entropy_sums)
    ]
    return frechet.merge_statistics(pools), functools.reduce(ScoreStatistics.merge, scores)


def inception_metrics(
    source: frechet.Batches,
    num_samples: int,
    *,
    reference: str | tuple[np.ndarray, np.ndarray] | frechet.FeatureStatistics | None = None,
    **kwargs,
) -> dict[str, float]:
    """{"fid" (when `reference` is given), "inception_score", "inception_score_std"}.

    `reference`: an .npz with `mu` (2048,) and `sigma` (2048, 2048), a (mu, sigma) pair or
    FeatureStatistics of real images. The reference and the weights file are checked before
    any image is generated or any network compiled. Other arguments: `inception_statistics`.
    """
    if kwargs.get("feature_fn") is None:
        require_weights(kwargs.get("weights"))
    reference = check_reference(reference)
    pool_stats, score_stats = inception_statistics(source, num_samples, **kwargs)
    score, score_std = score_stats.score()
    result = {"inception_score": score, "inception_score_std": score_std}
    if reference is not None:
        result["fid"] = frechet.frechet_distance_to_reference(pool_stats, reference)
    return result
