"""The Inception Score, computed in a stream of batches.

Salimans et al. (2016), "Improved Techniques for Training GANs", section 4:
IS = exp(E_x KL(p(y|x) || p(y))) with p(y) = E_x p(y|x), over the 1008-way softmax of the FID
Inception network (`flowjax.metrics.inception`). As in the reference code, the N samples are cut
into `num_splits` (10) contiguous chunks, chunk k holding samples [k N // s, (k+1) N // s); the
score is computed in each chunk and the mean and standard deviation over chunks are reported.

Streaming: E_x KL(p(y|x) || p(y)) = E_x sum_y p(y|x) log p(y|x) - sum_y p(y) log p(y), so each
chunk needs only its count, sum_x p(.|x) (C,) and sum_x sum_y p log p; all in float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special


@dataclasses.dataclass(frozen=True)
class ScoreStatistics:
    """Per-chunk sums for the Inception Score of `total` samples in `num_splits` chunks.

    seen: samples added so far; prob_sums: (num_splits, C); neg_entropy_sums: (num_splits,).
    """

    total: int
    seen: int
    prob_sums: np.ndarray
    neg_entropy_sums: np.ndarray

    @classmethod
    def empty(cls, total: int, num_classes: int, num_splits: int = 10) -> ScoreStatistics:
        if num_splits < 1 or total < num_splits:
            raise ValueError(
                f"The Inception Score needs num_splits >= 1 and at least num_splits samples, "
                f"got num_splits={num_splits}, total={total}."
            )
        return cls(total, 0, np.zeros((num_splits, num_classes)), np.zeros(num_splits))

    @property
    def num_splits(self) -> int:
        return self.prob_sums.shape[0]

    def _bounds(self) -> np.ndarray:
        """Chunk k holds the samples [bounds[k], bounds[k + 1])."""
        return np.arange(self.num_splits + 1) * self.total // self.num_splits

    def update(self, probs, start: int | None = None) -> ScoreStatistics:
        """These statistics with the class probabilities `probs` (b, C) of the samples
        start..start + b - 1 (default: the next b; a process scoring its part of each batch
        names where that part starts)."""
        probs = np.asarray(probs, np.float64)
        if probs.ndim != 2 or probs.shape[1] != self.prob_sums.shape[1]:
            raise ValueError(
                f"Expected probabilities of shape (b, {self.prob_sums.shape[1]}), "
                f"got {probs.shape}."
            )
        if self.seen + probs.shape[0] > self.total:
            raise ValueError(
                f"{self.seen + probs.shape[0]} samples added to statistics for {self.total}."
            )
        if not np.all(np.isfinite(probs)) or np.any(probs < 0):
            raise ValueError("Class probabilities must be finite and non-negative.")
        sums = probs.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            raise ValueError(
                "Class probabilities must sum to 1 per sample (pass logits to update_logits); "
                f"got row sums between {sums.min():.6g} and {sums.max():.6g}."
            )
        start = self.seen if start is None else start
        index = np.arange(start, start + probs.shape[0])
        chunk = np.searchsorted(self._bounds(), index, side="right") - 1
        prob_sums = self.prob_sums.copy()
        neg_entropy_sums = self.neg_entropy_sums.copy()
        np.add.at(prob_sums, chunk, probs)
        np.add.at(neg_entropy_sums, chunk, special.xlogy(probs, probs).sum(axis=1))
        return ScoreStatistics(self.total, self.seen + probs.shape[0], prob_sums, neg_entropy_sums)

    def update_logits(self, logits, start: int | None = None) -> ScoreStatistics:
        """`update` with the softmax of `logits` (b, C)."""
        return self.update(special.softmax(np.asarray(logits, np.float64), axis=1), start)

    def merge(self, other: ScoreStatistics) -> ScoreStatistics:
        """The statistics of both disjoint sets of samples of the same `total`."""
        if (other.total, other.prob_sums.shape) != (self.total, self.prob_sums.shape):
            raise ValueError("Cannot merge Inception Score statistics of different totals or splits.")
        return ScoreStatistics(
            self.total, self.seen + other.seen, self.prob_sums + other.prob_sums,
            self.neg_entropy_sums + other.neg_entropy_sums,
        )

    def score(self) -> tuple[float, float]:
        """(mean, std) over the chunks of exp(E_x KL(p(y|x) || p(y)))."""
        if self.seen != self.total:
            raise ValueError(f"Only {self.seen} of the {self.total} samples were added.")
        counts = np.diff(self._bounds())
        marginal = self.prob_sums / counts[:, None]
        kl = self.neg_entropy_sums / counts - special.xlogy(marginal, marginal).sum(axis=1)
        scores = np.exp(kl)
        return float(scores.mean()), float(scores.std())


def inception_score(logits, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) Inception Score of all samples' logits (N, C)."""
    logits = np.asarray(logits)
    stats = ScoreStatistics.empty(logits.shape[0], logits.shape[-1], num_splits)
    return stats.update_logits(logits).score()


def inception_score_from_probs(probs, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) Inception Score of all samples' class probabilities (N, C)."""
    probs = np.asarray(probs)
    stats = ScoreStatistics.empty(probs.shape[0], probs.shape[-1], num_splits)
    return stats.update(probs).score()
