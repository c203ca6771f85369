"""Conformance of the discrete part with the PyTorch reference, flow_matching 1.0.10.

`tests/data/flow_matching_1_0_10_discrete.npz` holds inputs and the reference's outputs; it is
written by `tests/reference/make_discrete_flow_matching_reference.py` (which needs torch and
flow-matching; these tests do not).

Deterministic outputs (the mixture path's velocity, the generalized KL loss) are compared in
float64 to rounding. The path's draw and the Euler solver are random, so they are compared in
distribution: the fraction of tokens left at x_0 within 5 binomial standard errors, and the
solver's histograms over the 16 states of 2 tokens (200,000 reference samples) in total
variation. The solver is also checked, on both sides, against the exact distribution of its
Markov chain (the product of its per-step transition matrices, computed here from the
reference's step rule), which pins down the step semantics: posterior draw, jump probability
1 - exp(-h lambda), corrector, last step onto the posterior draw.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.losses import generalized_kl
from flowjax.paths import (
    CategoricalSource,
    MaskSource,
    MixtureDiscreteProbPath,
    PolynomialScheduler,
)
from flowjax.solvers import discrete_sample

DATA_FILE = pathlib.Path(__file__).parent / "data" / "flow_matching_1_0_10_discrete.npz"
F64 = dict(rtol=1e-10, atol=1e-12)
K, MASK, VOCAB = 3, 3, 4
NUM_SAMPLES = 100_000


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA_FILE) as data:
        return {key: data[key] for key in data.files}


def source_of(p_0: np.ndarray):
    return MaskSource(VOCAB, mask_token=MASK) if p_0[MASK] == 1.0 else CategoricalSource(tuple(p_0))


@pytest.mark.parametrize("n", [2.0, 1.0])
def test_posterior_to_velocity_and_generalized_kl(ref, n, x64):
    logits, x_1, x_t, t = (jnp.asarray(ref[f"inputs/{k}"]) for k in ("logits", "x_1", "x_t", "t"))
    path = MixtureDiscreteProbPath(PolynomialScheduler(n), MaskSource(logits.shape[-1]))
    np.testing.assert_allclose(
        path.posterior_to_velocity(logits, x_t, t), ref[f"vel/poly{n:g}"], **F64
    )
    loss = generalized_kl(path, logits, x_1, x_t, t)
    np.testing.assert_allclose(loss, ref[f"loss/poly{n:g}/none"], **F64)
    np.testing.assert_allclose(loss.mean(), ref[f"loss/poly{n:g}/mean"], **F64)


def test_path_sample_leaves_the_same_fraction_at_x_0(ref):
    t = jnp.asarray(ref["sample/t"], jnp.float32)
    tokens = int(ref["sample/tokens"])
    path = MixtureDiscreteProbPath(PolynomialScheduler(2.0))
    x_0 = jnp.zeros((len(t), tokens), jnp.int32)
    x_t = path.sample(jax.random.key(0), x_0, jnp.ones_like(x_0), t).x_t
    ours = np.asarray(x_t == 0).mean(axis=1)
    theirs = ref["sample/fraction_at_x_0"]
    p = 1.0 - np.asarray(t) ** 2
    stderr = np.sqrt(p * (1 - p) / tokens)
    assert np.all(np.abs(ours - theirs) <= 5 * np.sqrt(2) * stderr + 1e-12)
    np.testing.assert_allclose(ours, p, atol=0.01)


# ------------------------------------------------------------------------------------------------
# the solver

STATES = np.array([(a, b) for a in range(K) for b in range(K)])  # data pairs (9, 2)


def exact_posterior_numpy(q: np.ndarray, p_0: np.ndarray, kappa: float) -> np.ndarray:
    """p(x_1^i | x) for all 16 token pairs x, shape (16, 2, VOCAB)."""
    posteriors = np.zeros((VOCAB * VOCAB, 2, VOCAB))
    for index, x in enumerate(np.ndindex(VOCAB, VOCAB)):
        likelihood = (1 - kappa) * p_0[list(x)][None, :] + kappa * (STATES == np.array(x))
        weights = q.reshape(-1) * likelihood.prod(axis=1)
        if weights.sum() == 0:  # a state the chain never visits
            continue
        weights = weights / weights.sum()
        for i in range(2):
            np.add.at(posteriors[index, i], STATES[:, i], weights)
    return posteriors


def exact_chain(q, p_0, n, step_size, div_free_slope, grid):
    """The distribution over the 16 states at each grid time after the first, from the
    reference's step rule applied to the exact posterior."""
    dist = np.outer(p_0, p_0).reshape(-1)
    out = []
    for a, b in zip(grid[:-1], grid[1:]):
        steps = int(round((b - a) / step_size))
        for k in range(steps):
            t, h = a + k * step_size, step_size
            kappa, d_kappa = t**n, n * t ** (n - 1)
            posterior = exact_posterior_numpy(q, p_0, kappa)
            kernel = np.zeros((VOCAB * VOCAB, VOCAB * VOCAB))
            for index, x in enumerate(np.ndindex(VOCAB, VOCAB)):
                per_coordinate = []
                for i in range(2):
                    r = posterior[index, i]
                    if b == 1.0 and k == steps - 1:
                        per_coordinate.append(r)
                        continue
                    move = np.zeros(VOCAB)
                    for x1 in range(VOCAB):
                        if r[x1] == 0:
                            continue
                        u = d_kappa / (1 - kappa) * np.eye(VOCAB)[x1]
                        c = div_free_slope * t
                        if c > 0:
                            u = u + c * d_kappa / (kappa * (1 - kappa)) * (
                                (1 - kappa) * p_0 + kappa * np.eye(VOCAB)[x1]
                            )
                        u[x[i]] = 0.0
                        lam = u.sum()
                        stay = np.exp(-h * lam)
                        step = (1 - stay) * u / lam if lam > 0 else np.zeros(VOCAB)
                        step[x[i]] += stay
                        move += r[x1] * step
                    per_coordinate.append(move)
                kernel[index] = np.outer(per_coordinate[0], per_coordinate[1]).reshape(-1)
            dist = dist @ kernel
        out.append(dist)
    return np.stack(out)


def table_model(q: jnp.ndarray, path: MixtureDiscreteProbPath):
    states = jnp.asarray(STATES)

    def logits(x, t):
        likelihood = path.probs(states, t).transpose(1, 2, 0)  # (2, VOCAB, 9)
        joint = q.reshape(-1) * jnp.prod(likelihood[jnp.arange(2), x], axis=1)
        weights = joint / joint.sum(axis=-1, keepdims=True)
        return jnp.log(jnp.einsum("ns,sik->nik", weights, jax.nn.one_hot(states, VOCAB)))

    return logits


def histograms(x: np.ndarray) -> np.ndarray:
    index = x[..., 0] * VOCAB + x[..., 1]
    return np.stack([np.bincount(i.reshape(-1), minlength=VOCAB * VOCAB) / i.size for i in index])


def total_variation(p, q) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=-1)


@pytest.mark.parametrize("case", ["mask", "uniform_div", "grid"])
def test_euler_solver_matches_the_reference_in_distribution(ref, case):
    c = {key: ref[f"solver/{case}/{key}"] for key in ("p_0", "n", "step_size", "div_free", "grid")}
    q, p_0, n = ref["solver/q"], c["p_0"], float(c["n"])
    grid = tuple(float(g) for g in c["grid"])
    slope = float(c["div_free"])  # the reference ran div_free(t) = slope * t
    path = MixtureDiscreteProbPath(PolynomialScheduler(n), source_of(p_0))
    x_init = path.source.sample(jax.random.key(1), (NUM_SAMPLES, 2))
    out = discrete_sample(
        jax.random.key(2),
        table_model(jnp.asarray(q, jnp.float32), path),
        x_init,
        path,
        step_size=float(c["step_size"]),
        time_grid=grid,
        div_free=lambda t: slope * t,
        return_intermediates=len(grid) > 2,
    )
    ours = histograms(np.asarray(out)[1:] if len(grid) > 2 else np.asarray(out)[None])
    theirs = ref[f"solver/{case}/histograms"]
    exact = exact_chain(q, p_0, n, float(c["step_size"]), slope, grid)
    assert np.all(total_variation(ours, exact) < 0.01), total_variation(ours, exact)
    assert np.all(total_variation(theirs, exact) < 0.01), total_variation(theirs, exact)
    assert np.all(total_variation(ours, theirs) < 0.012)
