"""Exact metrics of the factorization error of masked diffusion samplers (the Infinite Mask
Diffusion Model paper, IMDM, and its synthetic repeated-token task).

A masked diffusion model (MDLM, Sahoo et al., 2024) predicts, for every masked position i of a
partly masked sequence x_t, a distribution p_i(. | x_t) over the V tokens, and a sampler that
unmasks several positions in one step draws them INDEPENDENTLY from these marginals. The best
such product of per-position distributions is the product of the true marginals, and the
divergence it cannot remove is the total correlation (Watanabe, 1960) of the true posterior:

    min_{q_1..q_L} KL(p(X | x_t) || prod_i q_i) = KL(p(X | x_t) || prod_i p_i(X^i | x_t))
                                               = sum_i H(X^i | x_t) - H(X | x_t)
                                               = TC(X | x_t)                       (nats).

This is the factorization error, paid by every one-step factorized sampler whatever its
network. IMDM can remove it: each masked position also carries a continuous label eps_i, and
conditioned on eps the network's output may be deterministic, so its joint
E_eps[prod_i q_i(X^i | x_t, eps)] is a mixture of products, which represents a joint with any
total correlation.

The repeated-token language (`flowjax.data.languages.RepeatedTokenLanguage`: one uniform token
repeated L times; IMDM uses V = 50,000 and L = 10) makes all of it closed-form:

- `sequence_validity`: the fraction of sampled rows whose L tokens are all equal.
- `independent_validity`: the exact validity of independent per-position draws from marginals
  p_i, sum_v prod_i p_i(v), computed in log space (V^-(L-1) = 50,000^-9 underflows float32).
- `factorization_bound`: V^-(L-1), the validity of a one-step masked sampler from the masked
  sequence with the exact (uniform) marginals.
- `repeated_token_total_correlation`: TC(X | x_t) = (L - 1) log V when every position of x_t is
  masked and 0 otherwise (any revealed token fixes the sequence);
  `expected_total_correlation`: its mean over masks that reveal each position independently
  with probability kappa, (1 - kappa)^L (L - 1) log V.
- `masked_sampler_validity`: the exact validity of the masked sampler with the TRUE posterior
  on a grid of steps (what a perfect masked model reaches with that many steps).
- `total_correlation` and `conditional_total_correlation`: the same quantities of any small
  joint distribution given as a dense array, by enumeration (for checks).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp as _logsumexp


def _entropy(p: np.ndarray) -> float:
    """Entropy in nats of a distribution given as an array of any shape."""
    p = np.ravel(p)
    safe = np.where(p > 0, p, 1.0)
    return float(-(p * np.log(safe)).sum())


def _check_size(name: str, value, minimum: int) -> None:
    if not (isinstance(value, (int, np.integer)) and value >= minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def _check_integer_rows(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, L), got {x.shape}.")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {x.dtype}.")
    return x


def sequence_validity(samples: np.ndarray) -> float:
    """The fraction of rows of `samples` (n, L) int whose L tokens are all equal: the validity
    of samples of the repeated-token language."""
    samples = _check_integer_rows("samples", samples)
    if samples.shape[0] < 1 or samples.shape[1] < 1:
        raise ValueError(f"samples must hold at least one row of >= 1 token, got {samples.shape}.")
    return float((samples == samples[:, :1]).all(axis=1).mean())


def independent_validity(probs, *, log: bool = False):
    """The probability sum_v prod_i p_i(v) that independent draws from per-position marginals
    p_i are all equal.

    Args:
      probs: (..., L, V) per-position distributions, each row summing to 1. A NumPy array (or
        list) is checked and computed in float64; a JAX array is computed in its own dtype,
        under jit, without value checks.
      log: return the log-probability instead (finite where the probability underflows).

    Returns:
      (...) the validity (or its log): float64 NumPy for NumPy input, a JAX array otherwise.
      From log p_i in log space: logsumexp_v sum_i log p_i(v).
    """
    if isinstance(probs, jax.Array):
        if probs.ndim < 2:
            raise ValueError(f"probs must have shape (..., L, V), got {probs.shape}.")
        log_all = jnp.log(probs).sum(axis=-2)
        out = jax.nn.logsumexp(log_all, axis=-1)
        return out if log else jnp.exp(out)
    probs = np.asarray(probs, np.float64)
    if probs.ndim < 2 or probs.shape[-1] < 1 or probs.shape[-2] < 1:
        raise ValueError(f"probs must have shape (..., L, V) with L, V >= 1, got {probs.shape}.")
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        raise ValueError("probs must hold finite, non-negative probabilities.")
    sums = probs.sum(axis=-1)
    if np.abs(sums - 1.0).max() > 1e-4:
        raise ValueError(
            f"Every row probs[..., i, :] must sum to 1 (a distribution over the V tokens); sums "
            f"range over [{sums.min():.6g}, {sums.max():.6g}]."
        )
    with np.errstate(divide="ignore"):
        log_all = np.log(probs).sum(axis=-2)
    out = _logsumexp(log_all, axis=-1)
    return out if log else np.exp(out)


def factorization_bound(vocab_size: int, seq_len: int) -> float:
    """V^-(L-1): the validity of a one-step masked sampler on the repeated-token language, whose
    exact marginals from the masked sequence are all uniform (`independent_validity`)."""
    _check_size("vocab_size", vocab_size, 2)
    _check_size("seq_len", seq_len, 1)
    return math.exp(-(seq_len - 1) * math.log(vocab_size))


def total_correlation(joint: np.ndarray) -> float:
    """TC = sum_i H(p_i) - H(p) in nats of a joint distribution of L variables given as a dense
    array p of shape (V_1, ..., V_L) (e.g. (V,)*L) summing to 1; p_i are its marginals."""
    p = np.asarray(joint, np.float64)
    if p.ndim < 1:
        raise ValueError(f"joint must have one axis per variable, shape (V,)*L, got {p.shape}.")
    if not np.all(np.isfinite(p)) or (p.size and p.min() < 0):
        raise ValueError("joint must hold finite, non-negative probabilities.")
    if abs(p.sum() - 1.0) > 1e-8:
        raise ValueError(f"joint must sum to 1 (a distribution), got a sum of {p.sum():.12g}.")
    axes = range(p.ndim)
    marginals = [p.sum(axis=tuple(j for j in axes if j != i)) for i in axes]
    return sum(_entropy(m) for m in marginals) - _entropy(p)


def conditional_total_correlation(
    joint: np.ndarray, x_t: np.ndarray, mask_token: int
) -> np.ndarray:
    """TC(X | x_t) (B,) float64 of a dense joint p (V_1, ..., V_L) given partly masked rows x_t
    (B, L) int (masked positions = `mask_token`, a token no position uses): the total
    correlation of p conditioned on the revealed tokens (by enumeration; revealed positions have
    zero entropy and add nothing)."""
    p = np.asarray(joint, np.float64)
    x_t = _check_integer_rows("x_t", x_t)
    if x_t.shape[1] != p.ndim:
        raise ValueError(
            f"x_t must have one column per variable of joint, (B, {p.ndim}), got {x_t.shape}."
        )
    if 0 <= mask_token < max(p.shape):
        raise ValueError(
            f"mask_token={mask_token} is a token of the joint (ids [0, {max(p.shape)})); the mask "
            "must be an id outside the vocabulary."
        )
    revealed = x_t != mask_token
    if np.any(revealed & ((x_t < 0) | (x_t >= np.array(p.shape)))):
        raise ValueError(f"x_t holds revealed ids outside the joint's vocabulary {p.shape}.")
    out = np.zeros(len(x_t))
    for b, row in enumerate(x_t):
        sub = p[tuple(int(v) if v != mask_token else slice(None) for v in row)]
        mass = float(np.sum(sub))
        if mass <= 0:
            raise ValueError(f"x_t[{b}] = {row.tolist()} has probability 0 under joint.")
        out[b] = total_correlation(sub / mass) if np.ndim(sub) else 0.0
    return out


def repeated_token_total_correlation(
    x_t: np.ndarray, mask_token: int, vocab_size: int
) -> np.ndarray:
    """The exact TC(X | x_t) (B,) float64 of the repeated-token language given partly masked rows
    x_t (B, L) int (masked positions = `mask_token`, outside [0, V)): (L - 1) log V for a fully
    masked row (uniform marginals, entropy log V each, joint entropy log V), 0 otherwise (any
    revealed token fixes the sequence). This is the factorization error of a one-step sampler
    from x_t (module docstring)."""
    _check_size("vocab_size", vocab_size, 2)
    x_t = _check_integer_rows("x_t", x_t)
    if 0 <= mask_token < vocab_size:
        raise ValueError(
            f"mask_token={mask_token} is a token of the language (ids [0, {vocab_size})); the "
            "mask must be an id outside the vocabulary, e.g. vocab_size."
        )
    revealed = x_t != mask_token
    if np.any(revealed & ((x_t < 0) | (x_t >= vocab_size))):
        raise ValueError(f"x_t holds revealed ids outside the vocabulary [0, {vocab_size}).")
    first = np.where(revealed, x_t, -1).max(axis=1, keepdims=True)  # a revealed token, or -1
    conflicting = (revealed & (x_t != first)).any(axis=1)
    if conflicting.any():
        b = int(np.flatnonzero(conflicting)[0])
        raise ValueError(
            f"x_t[{b}] = {x_t[b].tolist()} reveals different tokens: it has probability 0 under "
            "the repeated-token language."
        )
    all_masked = ~revealed.any(axis=1)
    return np.where(all_masked, (x_t.shape[1] - 1) * math.log(vocab_size), 0.0)


def expected_total_correlation(kappa_t, seq_len: int, vocab_size: int):
    """E[TC(X | x_t)] = (1 - kappa)^L (L - 1) log V of the repeated-token language when each
    position is revealed independently with probability kappa = `kappa_t` (a float, or an array
    of them in [0, 1]): only the fully masked rows, probability (1 - kappa)^L, carry any. Returns
    a float for a float, float64 NumPy otherwise."""
    _check_size("seq_len", seq_len, 1)
    _check_size("vocab_size", vocab_size, 2)
    kappa = np.asarray(kappa_t, np.float64)
    if not np.all((kappa >= 0) & (kappa <= 1)):
        raise ValueError(f"kappa_t must lie in [0, 1], got {kappa_t!r}.")
    out = (1.0 - kappa) ** seq_len * (seq_len - 1) * math.log(vocab_size)
    return float(out) if out.ndim == 0 else out


def masked_sampler_validity(kappas, seq_len: int, vocab_size: int) -> float:
    """The exact validity on the repeated-token language of the masked diffusion sampler with
    the true posterior (the best any masked model can do), over the grid of unmasking
    probabilities `kappas` (kappa at each grid time, ascending, the last 1).

    While every position is masked the posteriors are uniform, so the first step that reveals
    any position draws its j revealed tokens independently and they agree with probability
    V^-(j - 1); after it every token is known and the rest follow. With m = L masked positions
    each revealed from kappa_a to kappa_b with probability r = (kappa_b - kappa_a) /
    (1 - kappa_a):

        validity = sum_steps P(nothing revealed before) sum_{j >= 1} C(L, j) r^j (1 - r)^(L-j)
                   V^-(j-1).

    One step from all masks gives V^-(L-1) (`factorization_bound`); many steps tend to 1.
    """
    _check_size("seq_len", seq_len, 1)
    _check_size("vocab_size", vocab_size, 2)
    kappas = np.asarray(kappas, np.float64)
    if kappas.ndim != 1 or kappas.size < 2 or np.any(np.diff(kappas) <= 0):
        raise ValueError(f"kappas must be an ascending grid of >= 2 values, got {kappas!r}.")
    if kappas[0] < 0 or kappas[-1] != 1.0:
        raise ValueError(f"kappas must start >= 0 and end at 1, got {kappas[0]} .. {kappas[-1]}.")
    j = np.arange(1, seq_len + 1)
    log_binom = np.array([math.lgamma(seq_len + 1) - math.lgamma(k + 1) - math.lgamma(seq_len - k + 1) for k in j])
    validity, untouched = 0.0, 1.0  # P(no position revealed so far)
    for a, b in zip(kappas[:-1], kappas[1:]):
        r = (b - a) / (1.0 - a)
        if r >= 1.0:
            terms = np.where(j == seq_len, 1.0, 0.0)
        else:
            terms = np.exp(log_binom + j * np.log(r) + (seq_len - j) * np.log1p(-r))
        validity += untouched * float((terms * float(vocab_size) ** -(j - 1.0)).sum())
        untouched *= (1.0 - r) ** seq_len
    return float(validity)
