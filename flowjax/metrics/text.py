"""Metrics of language models: perplexities and the entropy of samples.

- Likelihood: `perplexity_metrics` turns per-sequence log-likelihoods (exact, for an
  autoregressive model) or ELBOs (a lower bound, for diffusion and flow models; the "ELBO
  perplexity" is then an upper bound) into nats and bits per token and the perplexity
  exp(-mean log p / tokens) (MDLM, Sahoo et al., 2024, section 4.1). `bits_per_byte` divides by
  the bytes the tokens decode to instead, which compares models with different tokenizers.
- Generative perplexity: exp of the mean negative log-likelihood per token of a model's SAMPLES
  under a judge model, e.g. GPT-2 Large (MDLM section 4.1; Flow Matching Guide, section 7): low
  is fluent to the judge. `generative_perplexity` takes any judge as a function tokens (B, L) ->
  log p (B,): a trained `flowjax` autoregressive model, GPT-2 converted to Flax, or, on a
  synthetic language whose likelihood is known, the true process itself (the exact generative
  perplexity, which no judge approximates).
- `unigram_entropy`: the entropy (nats) of each sample's token histogram, the guard of MDLM /
  ReMDM / the Guide's text evaluation against collapsed samples, whose repetitions earn a
  deceptively low generative perplexity; natural text of 1,024 GPT-2 tokens has about 5.6 nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def perplexity_metrics(
    log_likelihood: np.ndarray, tokens_per_sequence: int, prefix: str = "nll"
) -> dict[str, float]:
    """{prefix_nats, prefix_nats_stderr, prefix_bits_per_token, perplexity} from per-sequence
    log-likelihoods (or ELBOs) of sequences of `tokens_per_sequence` tokens; with prefix
    "nelbo" the perplexity is named "elbo_perplexity" (an upper bound)."""
    log_likelihood = np.asarray(log_likelihood, np.float64)
    if log_likelihood.ndim != 1 or log_likelihood.size < 2:
        raise ValueError(
            f"log_likelihood must hold one value per sequence (n,), n >= 2, got shape "
            f"{log_likelihood.shape}."
        )
    if not tokens_per_sequence >= 1:
        raise ValueError(f"tokens_per_sequence must be >= 1, got {tokens_per_sequence}.")
    nats = float(-log_likelihood.mean())
    per_token = nats / tokens_per_sequence
    return {
        f"{prefix}_nats": nats,
        f"{prefix}_nats_stderr": float(log_likelihood.std(ddof=1) / np.sqrt(log_likelihood.size)),
        f"{prefix}_bits_per_token": per_token / math.log(2.0),
        "elbo_perplexity" if prefix == "nelbo" else "perplexity": math.exp(per_token),
    }


def bits_per_byte(log_likelihood: np.ndarray, num_bytes: np.ndarray) -> float:
    """-sum log p / (ln 2 sum bytes): the code length per byte of text, for sequences whose
    decoded text has `num_bytes` bytes each."""
    log_likelihood, num_bytes = np.asarray(log_likelihood, np.float64), np.asarray(num_bytes)
    if num_bytes.shape != log_likelihood.shape:
        raise ValueError(
            f"num_bytes must hold one count per log-likelihood, shape {log_likelihood.shape}, "
            f"got {num_bytes.shape}."
        )
    if not np.issubdtype(num_bytes.dtype, np.integer) or np.any(num_bytes < 0):
        raise ValueError(f"num_bytes must be integer counts >= 0, got {num_bytes.dtype} values.")
    total_bytes = int(num_bytes.sum())
    if total_bytes == 0:
        raise ValueError("num_bytes sums to 0: bits per byte needs text of at least one byte.")
    return float(-log_likelihood.sum() / (math.log(2.0) * total_bytes))


def _check_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 2 or not np.issubdtype(samples.dtype, np.integer):
        raise ValueError(
            f"samples must be integer tokens (n, L), got {samples.dtype} {samples.shape}."
        )
    return samples


def unigram_entropy(samples: np.ndarray) -> np.ndarray:
    """The entropy in nats of each sample's token histogram, (n,) for samples (n, L)."""
    samples = _check_samples(samples)
    entropies = np.empty(len(samples))
    for i, row in enumerate(samples):
        counts = np.unique(row, return_counts=True)[1]
        p = counts / counts.sum()
        entropies[i] = float(-(p * np.log(p)).sum())
    return entropies


def generative_perplexity(
    judge_log_prob: Callable[[np.ndarray], np.ndarray],
    samples: np.ndarray,
    *,
    batch_size: int = 64,
    judge_vocab_size: int | None = None,
) -> dict[str, float]:
    """{"gen_perplexity", "gen_nll_nats_per_token", "unigram_entropy"} of samples (n, L) under
    a judge log p(tokens (B, L)) -> (B,), scored `batch_size` sequences at a time.

    A judge with a smaller vocabulary than the samples' tokens cannot score them: that raises a
    ValueError before anything is scored (`judge_vocab_size`)."""
    samples = _check_samples(samples)
    if samples.size == 0:
        raise ValueError(
            f"samples must hold at least one sequence of at least one token, got {samples.shape}."
        )
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if judge_vocab_size is not None and samples.max() >= judge_vocab_size:
        raise ValueError(
            f"The samples hold token ids up to {int(samples.max())}, outside the judge's "
            f"vocabulary of {judge_vocab_size}: the judge must read the samples' tokenizer."
        )
    log_p = np.concatenate(
        [
            np.asarray(judge_log_prob(samples[i : i + batch_size]), np.float64)
            for i in range(0, len(samples), batch_size)
        ]
    )
    per_token = float(-log_p.sum() / samples.size)
    return {
        "gen_perplexity": math.exp(per_token),
        "gen_nll_nats_per_token": per_token,
        "unigram_entropy": float(unigram_entropy(samples).mean()),
    }
