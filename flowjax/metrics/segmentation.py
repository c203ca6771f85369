"""Object-discovery metrics: the adjusted Rand index (ARI, FG-ARI) and the matched mean IoU.

These are the segmentation scores of the slot-attention literature (Locatello et al., NeurIPS
2020, "Object-Centric Learning with Slot Attention"; Jung et al., ICLR 2024, "Learning to Compose:
Improving Object Centric Learning by Injecting Compositionality"). An image of
P pixels (flatten H x W, or T x H x W for videos, into P) is a partition of its pixels into
ground-truth objects and, separately, into predicted segments (slots).

Adjusted Rand index (Hubert & Arabie, 1985, "Comparing partitions", J. Classification
2:193-218). With the contingency table n_ij = #{pixels of true object i in predicted segment j},
row sums a_i, column sums b_j and n = sum_ij n_ij pixels,

    index    = sum_ij C(n_ij, 2),
    expected = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2),
    maximum  = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2,
    ARI      = (index - expected) / (maximum - expected).

ARI is 1 for identical partitions (whatever the labels), about 0 for independent random ones
and can be negative. FG-ARI is the ARI over the pixels whose true id is not 0 (the background),
the headline number of the object-discovery tables. The contingency table is a batched one-hot
matmul, so both are pure and jit-able.

Conventions of ARI, and what the public reference code does:

- The denominator is 0 exactly when both partitions put every pixel in one cluster, or both put
  at most one pixel in each cluster (which includes images with 0 or 1 counted pixels, e.g. no
  foreground). The two partitions are then identical, and ARI is defined as 1. This is what SAVi
  does (google-research/slot-attention-video, savi/lib/metrics.py, `adjusted_rand_index`:
  `jnp.where(denominator, ari, 1.0)`, with integer ids and `ignore_background` dropping true id
  0), and what Learning to Compose gets (whieya/Learning-to-compose,
  evaluation/metrics/ari.py: `sklearn.metrics.adjusted_rand_score` per image on the pixels with
  true id >= 1; scikit-learn returns 1.0 whenever the two labellings agree on every pair,
  including an empty set of pixels). google-deepmind/multi_object_datasets
  (segmentation_metrics.py, released with the data sets Slot Attention is evaluated on) sets
  only the "one cluster in both" case to 1 (tested on the argmax ids), gives 0/0 = NaN for the
  others (e.g. no foreground pixel) and raises when there are no more pixels than clusters;
  here those cases are 1, as in scikit-learn, and nothing is refused.
  The values agree with `sklearn.metrics.adjusted_rand_score` in every case (tests).
- Ground truth as one-hot masks (B, P, K_true) is used as given, as in multi_object_datasets: a
  pixel whose row is all zero (padding) is left out; FG-ARI drops channel 0, as that repository's
  README computes it (`true_groups_oh[..., 1:]`). Predicted masks (B, P, K_pred), soft or
  one-hot, are reduced to their argmax over the last axis, as there (ties go to the first
  segment).
- The degenerate cases are recognised on the exact integer cluster sizes, not on the rounded
  denominator. The arithmetic is in JAX's default float (float32, or float64 with
  `jax.enable_x64`). In float32 the counts are exact below 2^24 pixels per image and the ARI
  was measured within 3e-7 of scikit-learn's float64 value on 256 x 256 images.

Mean IoU with Hungarian matching. For one image, IoU_ij = |T_i & S_j| / |T_i | S_j| between the
pixel sets of true object i and predicted segment j; the one-to-one matching m maximising
sum_i IoU_{i, m(i)} is found with `scipy.optimize.linear_sum_assignment` on the host (the IoU
matrices are computed in JAX, batched), and

    mIoU = (1 / #objects) sum_{objects i} IoU_{i, m(i)},

where the objects are the true ids with at least one pixel in the image (the background id 0
left out when `ignore_background`), and an object left without a segment (more objects than
segments) counts as IoU 0. Learning to Compose (evaluation/metrics/iou.py,
`compute_total_ious`) differs in three ways: it matches on the cosine distance between the binary
masks instead of the IoU, skips objects left unmatched instead of counting 0, and averages over
all objects of the evaluation set instead of per image. `matched_ious` gives the per-object
values, so that the pooled average (np.nanmean over everything) can be taken as well.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from flowjax._checks import concrete_value

_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# Adjusted Rand index


def adjusted_rand_index(
    true_masks,
    pred_masks,
    ignore_background: bool = False,
    *,
    num_true: int | None = None,
    num_pred: int | None = None,
) -> jax.Array:
    """The ARI (Hubert & Arabie, 1985) between the true and predicted segmentation of each image.

    true_masks: integer ids (B, P), or one-hot masks (B, P, K_true) (a row of zeros leaves the
      pixel out).
    pred_masks: integer ids (B, P), or soft or one-hot masks (B, P, K_pred), reduced to their
      argmax over the last axis.
    ignore_background: leave out the pixels whose true id is 0 (true mask channel 0): FG-ARI.
    num_true, num_pred: the number of ids (ids lie in [0, num)); only for integer ids, and
      required under `jax.jit`. Outside jit they default to max id + 1, and ids are checked to
      lie in [0, num). Under jit a pixel with an id outside [0, num) is left out.

    Returns the (B,) ARI, 1 where the two partitions coincide (module docstring: the degenerate
    cases are 1, as SAVi and scikit-learn). Pure and jit-able (with num_true, num_pred given for
    integer ids).
    """
    fn = "adjusted_rand_index"
    true_shape = _check_segmentations(fn, true_masks, pred_masks)
    true_one_hot = _one_hot(fn, "true_masks", true_masks, num_true, "num_true", hard=False)
    pred_one_hot = _one_hot(fn, "pred_masks", pred_masks, num_pred, "num_pred", hard=True)
    if ignore_background:
        if true_one_hot.shape[-1] < 2:
            raise ValueError(
                f"{fn}: ignore_background drops true id 0 (the background) and needs at least "
                f"one more true id, got {true_one_hot.shape[-1]} true cluster(s) (true_masks of "
                f"shape {true_shape}, num_true={num_true})."
            )
        true_one_hot = true_one_hot[..., 1:]
    return _adjusted_rand_index(true_one_hot, pred_one_hot)


def fg_adjusted_rand_index(
    true_masks, pred_masks, *, num_true: int | None = None, num_pred: int | None = None
) -> jax.Array:
    """FG-ARI, (B,): `adjusted_rand_index` over the pixels whose true id is not 0 (background).

    An image with at most one foreground pixel gets 1 (module docstring). Pure and jit-able.
    """
    return adjusted_rand_index(
        true_masks, pred_masks, ignore_background=True, num_true=num_true, num_pred=num_pred
    )


@jax.jit
def _adjusted_rand_index(true_one_hot: jax.Array, pred_one_hot: jax.Array) -> jax.Array:
    """ARI (B,) from the one-hot true (B, P, K_true) and predicted (B, P, K_pred) masks."""
    counts = jnp.einsum("bpi,bpj->bij", true_one_hot, pred_one_hot, precision=_HIGHEST)
    true_sizes, pred_sizes = counts.sum(axis=2), counts.sum(axis=1)
    n = true_sizes.sum(axis=1)
    # Twice the pair counts C(x, 2) = x (x - 1) / 2 throughout: the factors of 2 cancel.
    index = jnp.sum(counts * (counts - 1), axis=(1, 2))
    true_pairs = jnp.sum(true_sizes * (true_sizes - 1), axis=1)
    pred_pairs = jnp.sum(pred_sizes * (pred_sizes - 1), axis=1)
    expected = true_pairs * pred_pairs / jnp.maximum(n * (n - 1), 1)
    maximum = (true_pairs + pred_pairs) / 2
    # maximum - expected = 0 iff both sides are all singletons or both a single cluster (then the
    # partitions coincide). Decided on the exact sizes, not on the rounded difference.
    largest_true, largest_pred = true_sizes.max(axis=1), pred_sizes.max(axis=1)
    degenerate = ((largest_true <= 1) & (largest_pred <= 1)) | (
        (largest_true == n) & (largest_pred == n)
    )
    denominator = jnp.where(degenerate, 1, maximum - expected)
    return jnp.where(degenerate, 1, (index - expected) / denominator).astype(counts.dtype)


# --------------------------------------------------------------------------------------------
# Mean IoU with Hungarian matching


def segment_iou_matrix(true_ids, pred_ids, num_true: int, num_pred: int) -> jax.Array:
    """IoU between every true object and every predicted segment, (B, num_true, num_pred).

    true_ids, pred_ids: integer ids (B, P) in [0, num_true) and [0, num_pred). An entry whose
    union is empty (the object and the segment are both absent) is 0. Pure and jit-able (a
    pixel with an id outside the range belongs to no object or segment).
    """
    fn = "segment_iou_matrix"
    _check_id_pair(fn, true_ids, pred_ids)
    num_true = _check_num(fn, "num_true", num_true)
    num_pred = _check_num(fn, "num_pred", num_pred)
    intersection, true_area, pred_area = _overlaps(true_ids, pred_ids, num_true, num_pred)
    union = true_area[:, :, None] + pred_area[:, None, :] - intersection
    return intersection / jnp.where(union > 0, union, 1)


def matched_ious(
    true_ids, pred_ids, num_true: int, num_pred: int, ignore_background: bool = True
) -> np.ndarray:
    """The IoU of each true object with its Hungarian-matched segment, (B, num_true), float64.

    true_ids, pred_ids: integer ids (B, P) in [0, num_true) and [0, num_pred) (checked).
    Per image, the true objects are the ids with at least one pixel (id 0 left out when
    `ignore_background`); they are matched one-to-one to predicted segments maximising the total
    IoU (`scipy.optimize.linear_sum_assignment`). Entry [b, i] is the matched IoU of object i,
    0 for an object left without a segment (more objects than segments), and NaN where id i is
    not an object of image b. np.nanmean over all entries is the pooled (per-object) mIoU.
    """
    fn = "matched_ious"
    _check_id_pair(fn, true_ids, pred_ids)
    num_true = _check_num(fn, "num_true", num_true)
    num_pred = _check_num(fn, "num_pred", num_pred)
    if ignore_background and num_true < 2:
        raise ValueError(
            f"{fn}: ignore_background leaves out true id 0 (the background), so num_true must "
            f"be >= 2 (background + objects), got num_true={num_true}."
        )
    _check_id_range(fn, "true_ids", np.asarray(true_ids), num_true, "num_true")
    _check_id_range(fn, "pred_ids", np.asarray(pred_ids), num_pred, "num_pred")
    intersection, true_area, pred_area = (
        np.asarray(x, np.float64) for x in _overlaps(true_ids, pred_ids, num_true, num_pred)
    )
    union = true_area[:, :, None] + pred_area[:, None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)
    result = np.full(true_area.shape, np.nan)
    for b in range(iou.shape[0]):
        objects = np.flatnonzero(true_area[b] > 0)
        if ignore_background:
            objects = objects[objects != 0]
        result[b, objects] = 0.0
        rows, cols = linear_sum_assignment(iou[b, objects], maximize=True)
        result[b, objects[rows]] = iou[b, objects[rows], cols]
    return result


def mean_iou(
    true_ids, pred_ids, num_true: int, num_pred: int, ignore_background: bool = True
) -> np.ndarray:
    """The Hungarian-matched mean IoU of each image, (B,), float64 on the host.

    true_ids, pred_ids: integer ids (B, P) in [0, num_true) and [0, num_pred) (checked).
    mIoU = mean over the image's true objects (ids with at least one pixel, background id 0 left
    out when `ignore_background`) of the IoU with the segment matched to it one-to-one so that
    the total IoU is largest; an object left unmatched (more objects than segments) counts as 0.
    NaN for an image without objects. See `matched_ious` for the per-object values.
    """
    ious = matched_ious(true_ids, pred_ids, num_true, num_pred, ignore_background)
    counted = ~np.isnan(ious)
    total = np.where(counted, ious, 0.0).sum(axis=1)
    count = counted.sum(axis=1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


@functools.partial(jax.jit, static_argnames=("num_true", "num_pred"))
def _overlaps(
    true_ids: jax.Array, pred_ids: jax.Array, num_true: int, num_pred: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pixel counts: intersections (B, num_true, num_pred), true (B, num_true) and predicted
    (B, num_pred) areas."""
    dtype = _float_dtype()
    true_one_hot = jax.nn.one_hot(true_ids, num_true, dtype=dtype)
    pred_one_hot = jax.nn.one_hot(pred_ids, num_pred, dtype=dtype)
    intersection = jnp.einsum("bpi,bpj->bij", true_one_hot, pred_one_hot, precision=_HIGHEST)
    return intersection, true_one_hot.sum(axis=1), pred_one_hot.sum(axis=1)


# --------------------------------------------------------------------------------------------
# Input checks


def _float_dtype():
    """float32, or float64 when jax_enable_x64 is on."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _check_segmentations(fn: str, true_masks, pred_masks) -> tuple[int, ...]:
    """Both (B, P) ids or (B, P, K) masks with one B and one P; returns the true shape."""
    true_shape, pred_shape = tuple(jnp.shape(true_masks)), tuple(jnp.shape(pred_masks))
    for name, shape in (("true_masks", true_shape), ("pred_masks", pred_shape)):
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{fn}: {name} must be integer ids of shape (B, P) or masks of shape "
                f"(B, P, K) (flatten the pixel axes into P), got shape {shape}."
            )
    if true_shape[:2] != pred_shape[:2]:
        raise ValueError(
            f"{fn}: true_masks and pred_masks must have the same batch and pixel axes (B, P); "
            f"got true_masks of shape {true_shape} and pred_masks of shape {pred_shape}."
        )
    return true_shape


def _check_id_pair(fn: str, true_ids, pred_ids) -> None:
    """Both integer ids of one shape (B, P)."""
    true_shape, pred_shape = tuple(jnp.shape(true_ids)), tuple(jnp.shape(pred_ids))
    for name, ids in (("true_ids", true_ids), ("pred_ids", pred_ids)):
        shape, dtype = tuple(jnp.shape(ids)), jnp.result_type(ids)
        if len(shape) != 2:
            raise ValueError(
                f"{fn}: {name} must be integer ids of shape (B, P) (flatten the pixel axes into "
                f"P; for masks take the argmax over the segment axis), got shape {shape}."
            )
        if not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"{fn}: {name} must hold integer ids, got dtype {dtype}.")
    if true_shape != pred_shape:
        raise ValueError(
            f"{fn}: true_ids and pred_ids must have the same shape (B, P); got "
            f"true_ids of shape {true_shape} and pred_ids of shape {pred_shape}."
        )


def _check_num(fn: str, name: str, num) -> int:
    """`num` as an int >= 1 (the number of clusters)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"{fn}: {name} must be an int >= 1 (the number of ids), got {num!r}.")
    return int(num)


def _check_id_range(fn: str, name: str, value: np.ndarray, num: int, num_name: str) -> None:
    """Raises unless the concrete ids `value` lie in [0, num)."""
    if value.size == 0:
        return
    lo, hi = int(value.min()), int(value.max())
    if lo < 0 or hi >= num:
        raise ValueError(
            f"{fn}: {name} holds ids in [{lo}, {hi}], outside [0, {num_name}) = [0, {num})."
        )


def _one_hot(fn: str, name: str, masks, num: int | None, num_name: str, *, hard: bool):
    """(B, P, K) one-hot masks in the default float dtype from ids (B, P) or masks (B, P, K);
    masks are reduced to their argmax over K when `hard`, used as given otherwise."""
    dtype = _float_dtype()
    masks = jnp.asarray(masks)
    if masks.ndim == 3:
        if num is not None:
            raise ValueError(
                f"{fn}: {num_name} is only for integer ids; {name} are masks of shape "
                f"{masks.shape} with {masks.shape[-1]} clusters."
            )
        if masks.shape[-1] == 0:
            raise ValueError(
                f"{fn}: {name} must have at least one cluster, got masks of shape {masks.shape}."
            )
        if hard:
            return jax.nn.one_hot(jnp.argmax(masks, axis=-1), masks.shape[-1], dtype=dtype)
        return masks.astype(dtype)
    if not jnp.issubdtype(masks.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: {name} of shape (B, P) must hold integer ids, got dtype {masks.dtype} "
            "(masks have shape (B, P, K))."
        )
    value = concrete_value(masks)
    if num is None:
        if value is None:
            raise ValueError(
                f"{fn}: under jax.jit the number of ids of {name} cannot be read from its "
                f"values; pass {num_name}= (max id + 1)."
            )
        num = max(int(value.max()) + 1, 1) if value.size else 1
    num = _check_num(fn, num_name, num)
    if value is not None:
        _check_id_range(fn, name, value, num, num_name)
    return jax.nn.one_hot(masks, num, dtype=dtype)
