"""Classification metrics of predictive uncertainty: accuracy, NLL, ECE, Brier score, and
out-of-distribution detection from predictive entropy.

The metrics of Uncertainty Baselines (Nado et al., 2021, "Uncertainty Baselines: Benchmarks for
Uncertainty & Robustness in Deep Learning", section 3), for predictive probabilities p (B, K)
over K classes and integer labels y (B,):

    accuracy  = mean_i [argmax_k p_ik = y_i]
    NLL       = -mean_i log p_{i, y_i}                     (a uniform p gives ln K)
    Brier     = mean_i sum_k (p_ik - [k = y_i])^2          (0 for a confident right answer,
                                                            2 for a confident wrong one)
    ECE       = sum_b (|B_b| / B) |acc(B_b) - conf(B_b)|   (Naeini et al., 2015; Guo et al.,
                                                            2017, eq. 3)

ECE bins the top-1 confidence c_i = max_k p_ik into `num_bins` equal-width bins of [0, 1]
(15 in Uncertainty Baselines): bin b holds the c in [b / M, (b + 1) / M), the last bin also
c = 1; acc(B_b) and conf(B_b) are the accuracy and the mean confidence of its examples, and
empty bins add nothing. So a model that says 0.8 and is right 80% of the time has ECE 0, and
one that says 0.9 and is right 60% of the time has ECE 0.3.

Out-of-distribution detection scores each input by its predictive entropy
H(p_i) = -sum_k p_ik log p_ik and reports how well it separates out-of-distribution inputs
(positives) from in-distribution ones (negatives): the area under the ROC curve and the average
precision (the area under the precision-recall curve), computed by scikit-learn
(`roc_auc_score`, `average_precision_score`).

The batched functions are pure and jit-able (JAX arrays in, scalars out); the OOD scores and
`classification_metrics` return host floats.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

ECE_BINS = 15
"""The number of equal-width confidence bins of ECE in Uncertainty Baselines."""


def _check(probs, labels) -> None:
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"Classification metrics take probabilities (B, K) and integer labels (B,), got "
            f"shapes {tuple(probs.shape)} and {tuple(labels.shape)}."
        )


def accuracy(probs: Float[Array, "B K"], labels: Int[Array, "B"]) -> jax.Array:
    """The fraction of examples whose most probable class is the label."""
    _check(probs, labels)
    return jnp.mean(jnp.argmax(probs, axis=-1) == labels)


def classification_nll(probs: Float[Array, "B K"], labels: Int[Array, "B"]) -> jax.Array:
    """-mean_i log p_{i, y_i} in nats (probabilities are clipped at 1e-12 below)."""
    _check(probs, labels)
    picked = jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]
    return -jnp.mean(jnp.log(jnp.maximum(picked, 1e-12)))


def brier_score(probs: Float[Array, "B K"], labels: Int[Array, "B"]) -> jax.Array:
    """mean_i sum_k (p_ik - [k = y_i])^2."""
    _check(probs, labels)
    onehot = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return jnp.mean(jnp.sum(jnp.square(probs - onehot), axis=-1))


def reliability_bins(
    probs: Float[Array, "B K"], labels: Int[Array, "B"], num_bins: int = ECE_BINS
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per confidence bin (module docstring): the example counts (M,), the accuracy (M,) and the
    mean confidence (M,) of its examples (0 in empty bins); the data of a reliability diagram."""
    _check(probs, labels)
    if num_bins < 1:
        raise ValueError(f"ECE needs at least one confidence bin, got num_bins={num_bins}.")
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == labels).astype(confidence.dtype)
    bins = jnp.clip(jnp.floor(confidence * num_bins).astype(jnp.int32), 0, num_bins - 1)
    counts = jnp.zeros(num_bins, confidence.dtype).at[bins].add(1.0)
    hits = jnp.zeros(num_bins, confidence.dtype).at[bins].add(correct)
    sure = jnp.zeros(num_bins, confidence.dtype).at[bins].add(confidence)
    per = jnp.maximum(counts, 1.0)
    return counts, hits / per, sure / per


def expected_calibration_error(
    probs: Float[Array, "B K"], labels: Int[Array, "B"], num_bins: int = ECE_BINS
) -> jax.Array:
    """ECE with `num_bins` equal-width bins of the top-1 confidence (module docstring)."""
    counts, acc, conf = reliability_bins(probs, labels, num_bins)
    return jnp.sum(counts * jnp.abs(acc - conf)) / jnp.sum(counts)


def predictive_entropy(probs: Float[Array, "B K"]) -> jax.Array:
    """H(p_i) = -sum_k p_ik log p_ik per example (B,), in nats (0 log 0 = 0)."""
    return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0),
                    axis=-1)


def ood_detection(in_probs: np.ndarray, out_probs: np.ndarray) -> dict[str, float]:
    """AUROC and AUPR of telling out-of-distribution inputs (positives) from in-distribution
    ones by predictive entropy: {"ood_auroc", "ood_aupr"} (1 is perfect separation, an AUROC of
    0.5 is chance)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    in_probs, out_probs = np.asarray(in_probs), np.asarray(out_probs)
    if in_probs.ndim != 2 or out_probs.ndim != 2 or in_probs.shape[1] != out_probs.shape[1]:
        raise ValueError(
            f"OOD detection takes probabilities (B_in, K) and (B_out, K) over the same classes, "
            f"got {in_probs.shape} and {out_probs.shape}."
        )
    if not len(in_probs) or not len(out_probs):
        raise ValueError("OOD detection needs at least one in- and one out-of-distribution input.")
    scores = np.concatenate([predictive_entropy(in_probs), predictive_entropy(out_probs)])
    positive = np.concatenate([np.zeros(len(in_probs)), np.ones(len(out_probs))])
    return {"ood_auroc": float(roc_auc_score(positive, scores)),
            "ood_aupr": float(average_precision_score(positive, scores))}


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, num_bins: int = ECE_BINS
) -> dict[str, float]:
    """{"accuracy", "nll", "ece", "brier"} of probabilities (B, K) against labels (B,)."""
    probs, labels = jnp.asarray(probs, jnp.float32), jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"Labels must be integer class ids, got dtype {labels.dtype}.")
    _check(probs, labels)
    if int(labels.min()) < 0 or int(labels.max()) >= probs.shape[1]:
        raise ValueError(
            f"The model predicts {probs.shape[1]} classes but the labels run from "
            f"{int(labels.min())} to {int(labels.max())}: use a model with as many classes as "
            "the data have."
        )
    return {
        "accuracy": float(accuracy(probs, labels)),
        "nll": float(classification_nll(probs, labels)),
        "ece": float(expected_calibration_error(probs, labels, num_bins)),
        "brier": float(brier_score(probs, labels)),
    }
