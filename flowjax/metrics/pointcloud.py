"""Generation metrics for point clouds: Chamfer and Earth Mover's distances, MMD, COV, 1-NNA.

The evaluation protocol of PointFlow (Yang et al., ICCV 2019, "PointFlow: 3D Point Cloud Generation
with Continuous Normalizing Flows"; `metrics/evaluation_metrics.py` of
stevenygd/PointFlow), reused unchanged by SetVAE (Kim et al., CVPR 2021, jw9730/setvae).

Distances between two point sets X = {x_i} (N points) and Y = {y_j} (M points) in R^D:

  Chamfer (squared, as PointFlow's `distChamfer` / `nn_distance`, which return squared
  distances, summed as `dl.mean(1) + dr.mean(1)`):
      CD(X, Y) = 1/N sum_i min_j |x_i - y_j|^2  +  1/M sum_j min_i |x_i - y_j|^2.

  Earth Mover's (N = M; Euclidean, not squared, divided by N, as PointFlow's `emd_approx`:
  `match_cost(sample, ref) / N`, whose CUDA kernel sums match * sqrt(|x - y|^2)):
      EMD(X, Y) = 1/N min_{permutations s} sum_i |x_i - y_s(i)|.
  PointFlow and SetVAE solve the matching approximately (the annealed soft matching
  `approxmatch`, a CUDA kernel from Fan et al., 2017, taken via pcgan-pytorch), whose cost is
  not exactly this optimum. Here the assignment is solved exactly on the host
  (`scipy.optimize.linear_sum_assignment`), the (N, N) cost matrices computed with JAX; numbers
  are therefore close to, not identical with, the papers' EMD columns.

Metrics between a collection of generated sets S_g (|S_g| = S) and reference sets S_r
(|S_r| = R), for a distance d (PointFlow's `lgan_mmd_cov` and `knn` with k = 1):

  MMD   = 1/R sum_{Y in S_r} min_{X in S_g} d(X, Y)              (minimum matching distance)
  COV   = |{argmin_{Y in S_r} d(X, Y) : X in S_g}| / R             (coverage)
  1-NNA = 1/(S + R) sum_{Z in S_g u S_r} 1[label(N_Z) = label(Z)]  (1-NN accuracy),
          N_Z = argmin_{W in S_g u S_r, W != Z} d(W, Z),

the leave-one-out accuracy of the 1-nearest-neighbour classifier on the union (ideal: 0.5;
1.0 means every set's nearest neighbour is of its own collection). As in PointFlow, the union
is ordered (references, samples), a set's distance to itself is replaced by +inf, and the
neighbour is the minimiser over that order. Ties are broken deterministically by the lowest
index (NumPy's argmin): for COV a sample's closest reference is the first of equals, and for
1-NNA a set's neighbour is the first of equals in the order (references, samples), so a tie
between a reference and a sample goes to the reference. PointFlow's `torch.min` / `torch.topk`
on the GPU leave ties unspecified; exact ties arise only from duplicate sets.

Values are returned unscaled and as fractions; the papers' tables print MMD-CD x 1e3, MMD-EMD
x 1e2, and COV and 1-NNA in percent.

The S x R, S x S and R x R distance matrices are computed block by block
(`pairwise_distances`); with a `jax.sharding.Mesh`, the sample axis of each block is split over
the mesh's batch axes ("data", "fsdp"; `flowjax.parallel`), the references of the block
replicated, and every process gets the whole matrix.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from scipy.optimize import linear_sum_assignment

from flowjax import parallel

DISTANCES = ("chamfer", "emd")
"""The distances `pairwise_distances` and `point_cloud_metrics` accept."""

_SUFFIX = {"chamfer": "cd", "emd": "emd"}


# --------------------------------------------------------------------------------------------
# Distances between batches of sets


def chamfer_distance(
    x: jax.Array,
    y: jax.Array,
    x_mask: jax.Array | None = None,
    y_mask: jax.Array | None = None,
) -> jax.Array:
    """The squared Chamfer distance between x[b] and y[b], shape (B,).

    x: (B, N, D) and y: (B, M, D) point sets. x_mask (B, N) and y_mask (B, M), bool, mark the
    valid points of padded sets (None: all valid); padded points take part neither in the
    nearest-neighbour minima nor in the means. Every set needs at least one valid point (checked
    when the masks are concrete; under `jax.jit` an empty set gives NaN or inf). Pure and
    jit-safe.
    """
    x, y = _check_pair("chamfer_distance", x, y)
    batch, n, m = x.shape[0], x.shape[1], y.shape[1]
    x_mask = _check_mask("chamfer_distance", "x_mask", x_mask, (batch, n))
    y_mask = _check_mask("chamfer_distance", "y_mask", y_mask, (batch, m))
    return _chamfer(_squared_distances(x, y), x_mask, y_mask)


def earth_movers_distance(x, y) -> np.ndarray:
    """The exact Earth Mover's distance between x[b] and y[b], shape (B,), float64 on the host.

    x, y: (B, N, D) sets of equal size N. EMD = min over one-to-one matchings of the mean
    Euclidean (not squared) distance between matched points (module docstring: PointFlow's
    convention, solved exactly). The (B, N, N) cost matrices are computed in one jitted call, the
    assignments by `scipy.optimize.linear_sum_assignment`, one set pair at a time on the host.
    """
    x, y = _check_pair("earth_movers_distance", x, y, equal_sizes=True)
    costs = np.asarray(_euclidean_distances_jit(x, y), np.float64)
    return np.array([_assignment_cost(cost) for cost in costs])


# --------------------------------------------------------------------------------------------
# Distance matrices between collections of sets


def pairwise_distances(
    samples,
    references,
    distance: str,
    batch_size: int,
    mesh: Mesh | None = None,
    *,
    reference_batch_size: int | None = None,
) -> np.ndarray:
    """The (S, R) matrix d(samples[i], references[j]), float64 on the host.

    samples: (S, N, D), references: (R, M, D) host arrays (the same on every process);
    distance: "chamfer" (any N, M) or "emd" (N = M). Computed in blocks of `batch_size` samples
    against `reference_batch_size` (default: `batch_size`) references, one compiled program for
    every block (the last blocks padded by repeating sets; the padding is dropped). A block holds
    batch_size x reference_batch_size x N x M distances in memory, and for "emd" those are also
    brought to the host, where every pair's assignment is solved (O(N^3) each).

    With `mesh`, the samples of each block are split over the mesh's ("data", "fsdp") axes
    (`batch_size` rounded up to a multiple of their device count) and the references replicated;
    the result is the same as without a mesh and is returned whole on every process (for "emd",
    every process solves all the assignments of the costs it receives).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}.")
    samples, references = _check_collections(
        "pairwise_distances", samples, references, equal_sizes=distance == "emd"
    )
    for name, value in (("batch_size", batch_size), ("reference_batch_size", reference_batch_size)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"pairwise_distances: {name} must be an integer >= 1, got {value!r}.")
    parts = 1 if mesh is None else _data_parallel_size(mesh)
    # No block larger than the collections (the sample block a multiple of the devices).
    sample_block = _round_up(min(int(batch_size), len(samples)), parts)
    reference_block = min(int(reference_batch_size or batch_size), len(references))
    block_fn = _block_function(distance, mesh)
    put_samples, put_references = _placement(mesh)

    num_samples, num_references = len(samples), len(references)
    padded_samples = _pad_to_multiple(samples, sample_block)
    padded_references = _pad_to_multiple(references, reference_block)
    result = np.empty((num_samples, num_references), np.float64)
    reference_blocks = [put_references(padded_references[j : j + reference_block])
                        for j in range(0, num_references, reference_block)]
    for i in range(0, num_samples, sample_block):
        xs = put_samples(padded_samples[i : i + sample_block])
        rows = min(sample_block, num_samples - i)
        for j, ys in zip(range(0, num_references, reference_block), reference_blocks,
                         strict=True):
            cols = min(reference_block, num_references - j)
            block = np.asarray(block_fn(xs, ys))
            if distance == "emd":
                block = block[:rows, :cols].astype(np.float64)
                result[i : i + rows, j : j + cols] = [
                    [_assignment_cost(cost) for cost in row] for row in block
                ]
            else:
                result[i : i + rows, j : j + cols] = block[:rows, :cols]
    return result


# --------------------------------------------------------------------------------------------
# Metrics from distance matrices


def minimum_matching_distance(sample_reference) -> float:
    """MMD: the mean over references of the distance to the closest sample.

    sample_reference: (S, R), entry [i, j] = d(sample i, reference j).
    """
    d = _check_matrix("minimum_matching_distance", "sample_reference", sample_reference)
    return float(d.min(axis=0).mean())


def coverage(sample_reference) -> float:
    """COV: the fraction of references that are the closest reference of at least one sample
    (ties: the first reference). sample_reference: (S, R), entry [i, j] = d(sample i, ref j)."""
    d = _check_matrix("coverage", "sample_reference", sample_reference)
    return float(np.unique(d.argmin(axis=1)).size / d.shape[1])


def one_nn_accuracy(sample_sample, sample_reference, reference_reference) -> float:
    """1-NNA: the leave-one-out accuracy of the 1-nearest-neighbour classifier telling samples
    from references, in [0, 1] (0.5 is ideal).

    sample_sample: (S, S), sample_reference: (S, R), reference_reference: (R, R); entry [i, j]
    the distance between set i of the first collection and set j of the second. Diagonals of the
    square matrices are ignored (each set is left out of its own neighbours). PointFlow's `knn`
    with k = 1: the union is ordered (references, samples) and each set's neighbour is the
    minimiser over that order, so ties go to the lower index (a reference before a sample).
    """
    d_sr = _check_matrix("one_nn_accuracy", "sample_reference", sample_reference)
    num_samples, num_references = d_sr.shape
    d_ss = _check_matrix("one_nn_accuracy", "sample_sample", sample_sample,
                         (num_samples, num_samples))
    d_rr = _check_matrix("one_nn_accuracy", "reference_reference", reference_reference,
                         (num_references, num_references))
    union = np.block([[d_rr, d_sr.T], [d_sr, d_ss]])
    np.fill_diagonal(union, np.inf)
    is_reference = np.arange(num_references + num_samples) < num_references
    neighbour = union.argmin(axis=0)  # column j: the set closest to set j
    return float(np.mean(is_reference[neighbour] == is_reference))


def metrics_from_distances(
    sample_sample, sample_reference, reference_reference, suffix: str = ""
) -> dict[str, float]:
    """{"mmd", "cov", "1nna"} (each name followed by `suffix`, e.g. "_cd") from the three
    distance matrices of `one_nn_accuracy`."""
    return {
        f"mmd{suffix}": minimum_matching_distance(sample_reference),
        f"cov{suffix}": coverage(sample_reference),
        f"1nna{suffix}": one_nn_accuracy(sample_sample, sample_reference, reference_reference),
    }


def point_cloud_metrics(
    samples,
    references,
    distances: str | Sequence[str] = DISTANCES,
    batch_size: int = 32,
    mesh: Mesh | None = None,
    *,
    reference_batch_size: int | None = None,
) -> dict[str, float]:
    """MMD, COV and 1-NNA of generated sets against reference sets, PointFlow's protocol.

    samples: (S, N, D), references: (R, M, D) host arrays (N = M for "emd"); distances: "chamfer",
    "emd" or a sequence of them. Returns {"mmd_cd", "cov_cd", "1nna_cd"} for "chamfer" and
    {"mmd_emd", "cov_emd", "1nna_emd"} for "emd" (unscaled; COV and 1-NNA as fractions). The
    S x R, S x S and R x R matrices come from `pairwise_distances(..., batch_size, mesh)`.
    """
    names = (distances,) if isinstance(distances, str) else tuple(distances)
    unknown = [name for name in names if name not in DISTANCES]
    if not names or unknown:
        raise ValueError(
            f"distances must name one or more of {DISTANCES}, got {distances!r}."
        )
    samples, references = _check_collections(
        "point_cloud_metrics", samples, references, equal_sizes="emd" in names
    )
    results = {}
    for name in dict.fromkeys(names):
        pairwise = functools.partial(pairwise_distances, distance=name, batch_size=batch_size,
                                     mesh=mesh, reference_batch_size=reference_batch_size)
        results.update(metrics_from_distances(
            pairwise(samples, samples), pairwise(samples, references),
            pairwise(references, references), suffix=f"_{_SUFFIX[name]}",
        ))
    return results


# --------------------------------------------------------------------------------------------
# Internals


def _squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """(..., N, M) squared Euclidean distances between (..., N, D) and (..., M, D), from the
    differences (no |x|^2 + |y|^2 - 2 x.y cancellation: identical points give exactly 0)."""
    return jnp.sum(jnp.square(x[..., :, None, :] - y[..., None, :, :]), axis=-1)


def _chamfer(squared: jax.Array, x_mask: jax.Array | None, y_mask: jax.Array | None
             ) -> jax.Array:
    """Chamfer distance from the (..., N, M) squared distances and optional masks."""
    if x_mask is None and y_mask is None:
        return squared.min(axis=-1).mean(axis=-1) + squared.min(axis=-2).mean(axis=-1)
    x_mask = jnp.ones(squared.shape[:-1], bool) if x_mask is None else x_mask
    y_mask = jnp.ones(squared.shape[:-2] + squared.shape[-1:], bool) if y_mask is None else y_mask
    valid = x_mask[..., :, None] & y_mask[..., None, :]
    masked = jnp.where(valid, squared, jnp.inf)
    x_to_y = jnp.where(x_mask, masked.min(axis=-1), 0.0)
    y_to_x = jnp.where(y_mask, masked.min(axis=-2), 0.0)
    return x_to_y.sum(-1) / x_mask.sum(-1) + y_to_x.sum(-1) / y_mask.sum(-1)


@jax.jit
def _euclidean_distances_jit(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sqrt(_squared_distances(x, y))


def _assignment_cost(cost: np.ndarray) -> float:
    """The optimal one-to-one matching cost of the (N, N) matrix `cost`, divided by N."""
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum() / cost.shape[0])


def _chamfer_block(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """(b, r) Chamfer distances between every set of xs (b, N, D) and of ys (r, M, D)."""
    return _chamfer(_squared_distances(xs[:, None, :, :], ys[None, :, :, :]), None, None)


def _emd_cost_block(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """(b, r, N, N) Euclidean cost matrices between every set of xs and of ys."""
    return jnp.sqrt(_squared_distances(xs[:, None, :, :], ys[None, :, :, :]))


@functools.lru_cache(maxsize=16)
def _block_function(distance: str, mesh: Mesh | None):
    fn = _chamfer_block if distance == "chamfer" else _emd_cost_block
    if mesh is None:
        return jax.jit(fn)
    return jax.jit(
        fn,
        in_shardings=(parallel.batch_sharding(mesh), parallel.replicated(mesh)),
        out_shardings=parallel.replicated(mesh),
    )


def _placement(mesh: Mesh | None):
    """(place a sample block, place a reference block) as device arrays."""
    if mesh is None:
        return jnp.asarray, jnp.asarray
    samples_sharding, references_sharding = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    return (lambda x: parallel.from_host(x, samples_sharding),
            lambda y: parallel.from_host(y, references_sharding))


def _data_parallel_size(mesh: Mesh) -> int:
    missing = [axis for axis in parallel.BATCH_AXES if axis not in mesh.shape]
    if missing:
        raise ValueError(
            f"pairwise_distances: the mesh needs the batch axes {parallel.BATCH_AXES} "
            f"(flowjax.parallel.make_mesh builds one), got axes {tuple(mesh.shape)}."
        )
    return math.prod(mesh.shape[axis] for axis in parallel.BATCH_AXES)


def _round_up(count: int, multiple: int) -> int:
    return multiple * math.ceil(count / multiple)


def _pad_to_multiple(sets: np.ndarray, block: int) -> np.ndarray:
    """`sets` with its leading axis padded to a multiple of `block` by repeating sets."""
    return np.resize(sets, (_round_up(len(sets), block), *sets.shape[1:]))


def _check_pair(name: str, x, y, equal_sizes: bool = False) -> tuple[jax.Array, jax.Array]:
    """x (B, N, D) and y (B, M, D) as floating JAX arrays (N = M if `equal_sizes`)."""
    x, y = _floating(jnp.asarray(x)), _floating(jnp.asarray(y))
    if x.ndim != 3 or y.ndim != 3:
        raise ValueError(
            f"{name} expects batches of point sets x (B, N, D) and y (B, M, D), got shapes "
            f"{x.shape} and {y.shape}."
        )
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"{name}: x (B, N, D) and y (B, M, D) need the same batch size B and point "
            f"dimension D, got shapes {x.shape} and {y.shape}."
        )
    _check_sizes(name, x.shape[1], y.shape[1], equal_sizes)
    return x, y


def _check_collections(name: str, samples, references, equal_sizes: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    """samples (S, N, D) and references (R, M, D) as finite floating host arrays."""
    samples, references = np.asarray(samples), np.asarray(references)
    if samples.ndim != 3 or references.ndim != 3:
        raise ValueError(
            f"{name} expects collections of point sets samples (S, N, D) and references "
            f"(R, M, D), got shapes {samples.shape} and {references.shape}."
        )
    if samples.shape[0] < 1 or references.shape[0] < 1:
        raise ValueError(
            f"{name} needs at least one sample set and one reference set, got shapes "
            f"{samples.shape} and {references.shape}."
        )
    if samples.shape[2] != references.shape[2]:
        raise ValueError(
            f"{name}: samples (S, N, D) and references (R, M, D) need the same point dimension "
            f"D, got shapes {samples.shape} and {references.shape}."
        )
    _check_sizes(name, samples.shape[1], references.shape[1], equal_sizes)
    samples, references = _floating(samples), _floating(references)
    for label, sets in (("samples", samples), ("references", references)):
        if not np.all(np.isfinite(sets)):
            raise ValueError(f"{name}: {label} contain NaN or inf coordinates.")
    return samples, references


def _check_sizes(name: str, n: int, m: int, equal_sizes: bool) -> None:
    if n < 1 or m < 1:
        raise ValueError(f"{name}: every set needs at least one point, got sizes {n} and {m}.")
    if equal_sizes and n != m:
        raise ValueError(
            f"{name}: the Earth Mover's distance matches points one to one, so both sets need "
            f"the same number of points, got {n} and {m} (subsample the larger sets, as "
            f"PointFlow does with 2,048 points per shape)."
        )


def _check_mask(name: str, label: str, mask, shape: tuple[int, int]) -> jax.Array | None:
    if mask is None:
        return None
    mask = mask if hasattr(mask, "shape") else np.asarray(mask)  # lists; arrays stay as given
    if mask.shape != shape or mask.dtype != jnp.bool_:
        raise ValueError(
            f"{name}: {label} must be a bool array of shape {shape} (one flag per point), got "
            f"{mask.dtype} of shape {mask.shape}."
        )
    if not isinstance(mask, jax.core.Tracer) and not np.all(np.asarray(mask).any(axis=-1)):
        empty = np.flatnonzero(~np.asarray(mask).any(axis=-1))
        raise ValueError(
            f"{name}: {label} marks no valid point in the sets {empty.tolist()}; every set "
            f"needs at least one point."
        )
    return mask


def _check_matrix(name: str, label: str, matrix, shape: tuple[int, int] | None = None
                  ) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape or (shape is not None and matrix.shape != shape):
        expected = "a non-empty 2-D matrix" if shape is None else f"shape {shape}"
        raise ValueError(f"{name}: {label} must be {expected}, got shape {matrix.shape}.")
    if np.isnan(matrix).any():
        raise ValueError(f"{name}: {label} contains NaN distances.")
    return matrix


def _floating(x):
    """x in the floating dtype JAX computes it in: at least float32 (integers, bools and
    half-precision coordinates promoted), float64 only with jax_enable_x64; the same dtype for
    host (NumPy) and device arrays, so that every path compiles the same program."""
    dtype = jax.dtypes.canonicalize_dtype(jnp.promote_types(x.dtype, jnp.float32))
    if x.dtype == dtype:
        return x
    return x.astype(dtype) if isinstance(x, jax.Array) else np.asarray(x, dtype)
