"""Calibration and OOD metrics (`flowjax.metrics.calibration`) against values known by hand and
scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from flowjax import metrics


def confident(confidence: float, labels: np.ndarray, predicted: np.ndarray, k: int = 10):
    """Probabilities with `confidence` on the predicted class, the rest spread evenly."""
    probs = np.full((len(labels), k), (1 - confidence) / (k - 1), np.float32)
    probs[np.arange(len(labels)), predicted] = confidence
    return probs, labels


def test_ece_of_the_issue_examples():
    labels = np.zeros(100, np.int32)
    right_80 = np.where(np.arange(100) < 80, 0, 1)
    probs, _ = confident(0.8, labels, right_80)
    assert metrics.classification_metrics(probs, labels)["ece"] == pytest.approx(0.0, abs=1e-6)
    right_60 = np.where(np.arange(100) < 60, 0, 1)
    probs, _ = confident(0.9, labels, right_60)
    result = metrics.classification_metrics(probs, labels)
    assert result["ece"] == pytest.approx(0.30, abs=1e-6)
    assert result["accuracy"] == pytest.approx(0.6)


def test_ece_weighs_bins_by_their_counts():
    # 50 examples at 0.95 all right (|1 - 0.95| = 0.05), 50 at 0.55 with 30 right (|0.6 - 0.55|).
    labels = np.zeros(100, np.int32)
    predicted = np.where((np.arange(100) < 50) | (np.arange(100) < 80), 0, 1)
    probs = np.full((100, 2), 0.0, np.float32)
    confidence = np.where(np.arange(100) < 50, 0.95, 0.55)
    probs[np.arange(100), predicted] = confidence
    probs[np.arange(100), 1 - predicted] = 1 - confidence
    counts, acc, conf = map(np.asarray, metrics.reliability_bins(probs, labels))
    assert counts.sum() == 100 and counts[14] == 50 and counts[8] == 50
    assert acc[8] == pytest.approx(0.6) and conf[8] == pytest.approx(0.55)
    ece = float(metrics.expected_calibration_error(probs, labels))
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05, abs=1e-6)


def test_nll_and_brier_closed_forms():
    labels = np.arange(10, dtype=np.int32)
    uniform = np.full((10, 10), 0.1, np.float32)
    result = metrics.classification_metrics(uniform, labels)
    assert result["nll"] == pytest.approx(math.log(10), rel=1e-6)
    assert result["brier"] == pytest.approx(0.9 ** 2 + 9 * 0.01, rel=1e-6)
    wrong = np.eye(10, dtype=np.float32)[(labels + 1) % 10]
    assert metrics.classification_metrics(wrong, labels)["brier"] == pytest.approx(2.0)
    assert float(metrics.predictive_entropy(uniform)[0]) == pytest.approx(math.log(10), rel=1e-6)
    assert float(metrics.predictive_entropy(wrong)[0]) == 0.0


def test_ood_detection_matches_sklearn_and_the_extremes():
    rng = np.random.default_rng(0)
    peaked = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 50)] * 0.9 + 0.01
    flat = rng.dirichlet(np.full(10, 5.0), 40).astype(np.float32)
    assert metrics.ood_detection(peaked, flat) == {"ood_auroc": 1.0, "ood_aupr": 1.0}
    mixed_in = rng.dirichlet(np.ones(10), 60)
    mixed_out = rng.dirichlet(np.full(10, 2.0), 30)
    result = metrics.ood_detection(mixed_in, mixed_out)
    entropy = np.concatenate([metrics.predictive_entropy(mixed_in),
                              metrics.predictive_entropy(mixed_out)])
    expected = roc_auc_score(np.r_[np.zeros(60), np.ones(30)], entropy)
    assert result["ood_auroc"] == pytest.approx(expected)
    assert 0.5 < result["ood_auroc"] < 1.0


def test_bad_input_is_refused_with_a_clear_error():
    probs = np.full((4, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="predicts 3 classes"):
        metrics.classification_metrics(probs, np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        metrics.classification_metrics(probs, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        metrics.classification_metrics(probs, np.zeros(4))
    with pytest.raises(ValueError, match="same classes"):
        metrics.ood_detection(probs, np.full((2, 4), 0.25))
