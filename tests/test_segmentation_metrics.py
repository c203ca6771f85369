"""ARI and FG-ARI against scikit-learn's adjusted_rand_score, and the Hungarian-matched mean IoU
against a brute-force search over all matchings and hand-computed cases."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from flowjax.metrics.segmentation import (
    adjusted_rand_index,
    fg_adjusted_rand_index,
    matched_ious,
    mean_iou,
    segment_iou_matrix,
)


def sklearn_ari(true_ids, pred_ids, foreground_only=False):
    """Per-image adjusted_rand_score, on the pixels with true id != 0 if foreground_only."""
    scores = []
    for t, p in zip(np.asarray(true_ids), np.asarray(pred_ids), strict=True):
        keep = t != 0 if foreground_only else np.ones(t.shape, bool)
        scores.append(adjusted_rand_score(t[keep], p[keep]))
    return np.array(scores)


def blob_segmentation(rng, batch, side, num_ids):
    """(batch, side * side) ids of a few axis-aligned rectangles over a background 0."""
    ids = np.zeros((batch, side, side), np.int32)
    for b in range(batch):
        for k in range(1, num_ids):
            r, c = rng.integers(0, side - 2, size=2)
            h, w = rng.integers(2, side // 2 + 1, size=2)
            ids[b, r : r + h, c : c + w] = k
    return ids.reshape(batch, -1)


def noisy(rng, ids, num_ids, rate):
    """ids with a fraction `rate` of the pixels relabelled at random."""
    flip = rng.random(ids.shape) < rate
    return np.where(flip, rng.integers(0, num_ids, ids.shape), ids).astype(np.int32)


# --------------------------------------------------------------------------------------------
# ARI


def test_ari_is_one_for_a_perfect_and_a_relabelled_segmentation():
    rng = np.random.default_rng(0)
    true = blob_segmentation(rng, 4, 12, 5)
    relabelled = rng.permutation(7)[true]  # ids permuted into a larger id range
    for pred in (true, relabelled):
        np.testing.assert_allclose(adjusted_rand_index(true, pred), 1.0, atol=1e-6)
        np.testing.assert_allclose(fg_adjusted_rand_index(true, pred), 1.0, atol=1e-6)


def test_ari_matches_sklearn_on_random_labellings():
    rng = np.random.default_rng(1)
    batch, pixels = 6, 300
    # Independent labellings (ARI ~ 0, some negative), and noisy copies (ARI between 0 and 1).
    true = rng.integers(0, 5, (batch, pixels)).astype(np.int32)
    pred = rng.integers(0, 7, (batch, pixels)).astype(np.int32)
    pred[3:] = noisy(rng, true[3:] * 2 % 7, 7, np.array([0.1, 0.4, 0.8])[:, None])
    ours = np.asarray(adjusted_rand_index(true, pred))
    assert ours.shape == (batch,)
    np.testing.assert_allclose(ours, sklearn_ari(true, pred), atol=1e-6, rtol=0)
    assert ours.min() < 0 < ours.max()


def test_fg_ari_matches_sklearn_on_the_foreground_pixels():
    rng = np.random.default_rng(2)
    true = blob_segmentation(rng, 5, 16, 6)
    pred = noisy(rng, (true + 3) % 8, 8, 0.25)
    expected = sklearn_ari(true, pred, foreground_only=True)
    np.testing.assert_allclose(fg_adjusted_rand_index(true, pred), expected, atol=1e-6)
    np.testing.assert_allclose(
        adjusted_rand_index(true, pred, ignore_background=True), expected, atol=1e-6
    )
    # The predicted labels of background pixels do not matter.
    other_background = np.where(true == 0, rng.integers(0, 8, true.shape), pred)
    np.testing.assert_allclose(fg_adjusted_rand_index(true, other_background), expected, atol=1e-6)
    # The full ARI differs from the FG-ARI here (the background is counted).
    assert not np.allclose(adjusted_rand_index(true, pred), expected, atol=1e-3)


def test_one_hot_and_soft_masks_equal_the_integer_ids():
    rng = np.random.default_rng(3)
    true = blob_segmentation(rng, 3, 10, 4)
    logits = rng.standard_normal((3, 100, 6)).astype(np.float32)
    pred = logits.argmax(-1).astype(np.int32)
    true_masks = np.eye(4, dtype=np.float32)[true]
    pred_one_hot = np.eye(6, dtype=np.float32)[pred]
    soft = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))
    for fn in (adjusted_rand_index, fg_adjusted_rand_index):
        expected = np.asarray(fn(true, pred))
        for t, p in ((true, pred_one_hot), (true, soft), (true_masks, pred), (true_masks, soft)):
            np.testing.assert_allclose(fn(t, p), expected, atol=1e-6)
    np.testing.assert_allclose(adjusted_rand_index(true, pred), sklearn_ari(true, pred), atol=1e-6)


def test_zero_rows_of_true_masks_leave_pixels_out():
    rng = np.random.default_rng(4)
    true = rng.integers(0, 3, (2, 60)).astype(np.int32)
    pred = noisy(rng, true, 4, 0.3)
    keep = rng.random(true.shape) < 0.7
    true_masks = np.eye(3, dtype=np.float32)[true] * keep[..., None]
    expected = [adjusted_rand_score(t[k], p[k]) for t, p, k in zip(true, pred, keep, strict=True)]
    np.testing.assert_allclose(adjusted_rand_index(true_masks, pred), expected, atol=1e-6)


@pytest.mark.parametrize(
    "true, pred",
    [
        ([0, 0, 0, 0], [3, 3, 3, 3]),  # one cluster in both
        ([0, 1, 2, 3], [3, 1, 0, 2]),  # every pixel its own cluster in both
        ([0, 0, 0, 0], [0, 1, 0, 1]),  # one cluster against two: 0
        ([0, 0, 1, 1], [0, 1, 0, 1]),  # negative
        ([5], [2]),  # a single pixel
    ],
)
def test_degenerate_cases_follow_sklearn(true, pred):
    true, pred = np.array([true], np.int32), np.array([pred], np.int32)
    np.testing.assert_allclose(adjusted_rand_index(true, pred), sklearn_ari(true, pred), atol=1e-6)


def test_fg_ari_without_foreground_pixels_is_one_as_sklearn():
    true = np.array([[0, 0, 0, 0], [0, 0, 2, 0], [1, 1, 0, 2]], np.int32)
    pred = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]], np.int32)
    expected = sklearn_ari(true, pred, foreground_only=True)
    np.testing.assert_allclose(expected, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(fg_adjusted_rand_index(true, pred), expected, atol=1e-6)


def test_ari_under_jit():
    rng = np.random.default_rng(5)
    true = blob_segmentation(rng, 3, 8, 4)
    pred = noisy(rng, true, 5, 0.2)
    jitted = jax.jit(lambda t, p: fg_adjusted_rand_index(t, p, num_true=4, num_pred=5))
    np.testing.assert_allclose(jitted(true, pred), sklearn_ari(true, pred, True), atol=1e-6)
    with pytest.raises(ValueError, match="pass num_true="):
        jax.jit(adjusted_rand_index)(true, pred)


# --------------------------------------------------------------------------------------------
# Mean IoU


def brute_force_mean_iou(true, pred, num_pred, ignore_background=True):
    """Best mean IoU over every one-to-one assignment of objects to segments, for one image;
    unmatched objects count 0."""
    objects = [k for k in np.unique(true) if not (ignore_background and k == 0)]
    iou = {
        (i, j): np.sum((true == i) & (pred == j)) / np.sum((true == i) | (pred == j))
        for i in objects
        for j in range(num_pred)
    }
    best = 0.0
    # Each object gets a distinct segment or None (unmatched).
    for choice in itertools.product([None, *range(num_pred)], repeat=len(objects)):
        used = [j for j in choice if j is not None]
        if len(used) != len(set(used)):
            continue
        best = max(
            best, sum(iou[i, j] for i, j in zip(objects, choice, strict=True) if j is not None)
        )
    return best / len(objects)


def test_mean_iou_is_one_for_a_perfect_and_a_relabelled_segmentation():
    rng = np.random.default_rng(6)
    true = blob_segmentation(rng, 3, 12, 5)
    relabelled = rng.permutation(7)[true].astype(np.int32)
    for ignore_background in (True, False):
        np.testing.assert_allclose(mean_iou(true, true, 5, 5, ignore_background), 1.0)
        np.testing.assert_allclose(mean_iou(true, relabelled, 5, 7, ignore_background), 1.0)


@pytest.mark.parametrize("num_pred", [2, 3, 4])  # fewer, as many and more segments than objects
def test_mean_iou_matches_brute_force(num_pred):
    rng = np.random.default_rng(num_pred)
    true = rng.integers(0, 4, (6, 24)).astype(np.int32)  # background + 3 objects
    pred = rng.integers(0, num_pred, (6, 24)).astype(np.int32)
    for ignore_background in (True, False):
        expected = [
            brute_force_mean_iou(t, p, num_pred, ignore_background)
            for t, p in zip(true, pred, strict=True)
        ]
        ours = mean_iou(true, pred, 4, num_pred, ignore_background)
        assert ours.shape == (6,)
        np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_mean_iou_over_and_under_segmentation_by_hand():
    # Over-segmentation: object 1 (4 pixels) split over segments 0 and 1, object 2 whole in
    # segment 2, the background in segment 3. Object 1 matches one half: IoU 2/4.
    true = np.array([[0, 0, 1, 1, 1, 1, 2, 2, 2, 2]], np.int32)
    pred = np.array([[3, 3, 0, 0, 1, 1, 2, 2, 2, 2]], np.int32)
    np.testing.assert_allclose(mean_iou(true, pred, 3, 4), [(0.5 + 1.0) / 2])
    np.testing.assert_allclose(mean_iou(true, pred, 3, 4, ignore_background=False), [2.5 / 3])
    ious = matched_ious(true, pred, 3, 4)
    np.testing.assert_allclose(ious, [[np.nan, 0.5, 1.0]])
    # Under-segmentation: one segment covers both objects (3 and 1 pixels); the larger object
    # gets it (IoU 3/4), the other is left unmatched and counts 0.
    true = np.array([[1, 1, 1, 2]], np.int32)
    pred = np.zeros((1, 4), np.int32)
    np.testing.assert_allclose(matched_ious(true, pred, 3, 1), [[np.nan, 0.75, 0.0]])
    np.testing.assert_allclose(mean_iou(true, pred, 3, 1), [0.375])
    # An image without objects is NaN; ids absent from an image are not objects of it.
    true = np.array([[0, 0, 0, 0], [0, 2, 2, 0]], np.int32)
    pred = np.array([[0, 0, 1, 1], [0, 1, 1, 0]], np.int32)
    ours = mean_iou(true, pred, 4, 2)
    assert np.isnan(ours[0]) and ours[1] == 1.0


def test_segment_iou_matrix():
    true = np.array([[0, 0, 1, 1, 1, 1]], np.int32)
    pred = np.array([[0, 1, 1, 1, 2, 2]], np.int32)
    expected = [[[1 / 2, 1 / 4, 0.0], [0.0, 2 / 5, 2 / 4], [0.0, 0.0, 0.0]]]
    np.testing.assert_allclose(segment_iou_matrix(true, pred, 3, 3), expected, rtol=1e-6)
    jitted = jax.jit(segment_iou_matrix, static_argnums=(2, 3))
    np.testing.assert_allclose(jitted(true, pred, 3, 3), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad input

IDS = np.zeros((2, 6), np.int32)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adjusted_rand_index(IDS, np.zeros((3, 6), np.int32)), "same batch and pixel"),
        (lambda: adjusted_rand_index(IDS, np.zeros((2, 5, 3))), "same batch and pixel"),
        (lambda: adjusted_rand_index(np.zeros((2, 6, 0)), IDS), "at least one cluster"),
        (lambda: adjusted_rand_index(IDS, np.zeros((2, 6, 0))), "at least one cluster"),
        (lambda: adjusted_rand_index(IDS, IDS, num_pred=0), "num_pred must be an int >= 1"),
        (lambda: adjusted_rand_index(IDS, IDS.astype(np.float32)), "integer ids"),
        (lambda: adjusted_rand_index(IDS[0], IDS[0]), r"shape \(B, P\)"),
        (lambda: adjusted_rand_index(IDS - 1, IDS), r"outside \[0, num_true\)"),
        (lambda: adjusted_rand_index(IDS + 3, IDS, num_true=2), r"ids in \[3, 3\]"),
        (lambda: adjusted_rand_index(IDS, np.zeros((2, 6, 3)), num_pred=3), "only for integer"),
        (lambda: fg_adjusted_rand_index(np.ones((2, 6, 1)), IDS), "ignore_background"),
        (lambda: mean_iou(IDS, np.zeros((2, 7), np.int32), 2, 2), "same shape"),
        (lambda: mean_iou(IDS, np.zeros((2, 6, 2), np.int32), 2, 2), "argmax"),
        (lambda: mean_iou(IDS, IDS, 2, 0), "num_pred must be an int >= 1"),
        (lambda: mean_iou(IDS, IDS, 1, 2), "num_true must be >= 2"),
        (lambda: mean_iou(IDS, IDS + 2, 2, 2), r"pred_ids holds ids in \[2, 2\]"),
        (lambda: mean_iou(IDS.astype(np.float32), IDS, 2, 2), "integer ids"),
        (lambda: segment_iou_matrix(IDS, IDS, 0, 2), "num_true must be an int >= 1"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
