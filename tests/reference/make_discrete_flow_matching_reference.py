"""Builds tests/data/flow_matching_1_0_10_discrete.npz: the discrete part of the PyTorch reference.

The reference is facebookresearch/flow_matching 1.0.10 (PyPI `flow-matching`): its
`MixtureDiscreteProbPath`, `MixturePathGeneralizedKL` and `MixtureDiscreteEulerSolver`. This script
only *calls* it; `tests/test_conformance_discrete_flow_matching.py` reads the file and checks
flowjax against it without PyTorch.

Run it from the repository root, in an environment with torch and flow-matching installed:

    .peer-venv/bin/python tests/reference/make_discrete_flow_matching_reference.py

What it stores (inputs drawn from NumPy with a fixed seed, float64 where the reference allows):

- vel/...: `posterior_to_velocity` of random logits (4, 3, 6) at tokens x_t and times t, for
  kappa_t = t^2 and kappa_t = t.
- loss/...: `MixturePathGeneralizedKL` per token (reduction "none") and its mean, same inputs.
- sample/...: `MixtureDiscreteProbPath.sample` is random, so what is stored is the fraction of
  tokens left at x_0 (x_0 != x_1 everywhere) over 50,000 tokens at each of 6 times.
- solver/<case>/...: `MixtureDiscreteEulerSolver.sample` is random too: stored are the histograms
  (over the 16 states of 2 tokens with vocabulary 4) of 200,000 samples, with the model giving the
  exact posterior of a known distribution q over 3 x 3 data pairs (a 4th token is the mask):
    mask         mask source, kappa = t^2, step 1/8;
    uniform_div  uniform source over the 3 data tokens, kappa = t, step 1/4, corrector
                 div_free(t) = 0.5 t (a function vanishing at t = 0, where the reference's
                 corrector coefficient kappa' / (kappa (1 - kappa)) is 1/0);
    grid         mask source, kappa = t^2, step 1/4, time_grid (0, 0.5, 1), the states at t = 0.5
                 and 1 (return_intermediates).
"""

from __future__ import annotations

import itertools
import os

import flow_matching
import numpy as np
import torch
from flow_matching.loss import MixturePathGeneralizedKL
from flow_matching.path import MixtureDiscreteProbPath
from flow_matching.path.scheduler import PolynomialConvexScheduler
from flow_matching.solver import MixtureDiscreteEulerSolver

assert flow_matching.__version__ == "1.0.10", flow_matching.__version__

OUT = os.path.join(
    os.path.dirname(__file__), os.pardir, "data", "flow_matching_1_0_10_discrete.npz"
)
rng = np.random.default_rng(20241)
torch.manual_seed(0)
data: dict[str, np.ndarray] = {}


def put(key: str, value) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    data[key] = np.asarray(value)


# ------------------------------------------------------------------------------------------------
# velocity and loss on random inputs

B, D, V = 4, 3, 6
logits = 3.0 * rng.standard_normal((B, D, V))
x_1 = rng.integers(0, V, (B, D))
x_t = np.where(rng.random((B, D)) < 0.5, x_1, rng.integers(0, V, (B, D)))
t = np.array([0.05, 0.3, 0.62, 0.9])
for key, value in (("logits", logits), ("x_1", x_1), ("x_t", x_t), ("t", t)):
    put(f"inputs/{key}", value)

for n in (2.0, 1.0):
    path = MixtureDiscreteProbPath(PolynomialConvexScheduler(n=n))
    tl, tx1, txt, tt = (torch.tensor(a) for a in (logits, x_1, x_t, t))
    put(f"vel/poly{n:g}", path.posterior_to_velocity(tl, txt, tt))
    put(f"loss/poly{n:g}/none", MixturePathGeneralizedKL(path, reduction="none")(tl, tx1, txt, tt))
    put(f"loss/poly{n:g}/mean", MixturePathGeneralizedKL(path, reduction="mean")(tl, tx1, txt, tt))

# ------------------------------------------------------------------------------------------------
# the path's random draw: the fraction of tokens still at x_0

sample_times = np.array([0.0, 0.1, 0.35, 0.5, 0.8, 1.0])
path = MixtureDiscreteProbPath(PolynomialConvexScheduler(n=2.0))
tokens = 50_000
x_0 = torch.zeros((len(sample_times), tokens), dtype=torch.long)
x_1s = torch.ones_like(x_0)
draw = path.sample(x_0=x_0, x_1=x_1s, t=torch.tensor(sample_times, dtype=torch.float64)).x_t
put("sample/t", sample_times)
put("sample/fraction_at_x_0", (draw == 0).double().mean(dim=1))
put("sample/tokens", tokens)

# ------------------------------------------------------------------------------------------------
# the Euler solver with the exact posterior of q over 3 x 3 data pairs

K, MASK, VOCAB = 3, 3, 4
q = rng.dirichlet(np.ones(K * K)).reshape(K, K)
put("solver/q", q)
states = torch.tensor(list(itertools.product(range(K), range(K))))  # (9, 2)


class ExactPosterior(torch.nn.Module):
    """p(x_1^i | x_t) of q for the mixture path with source probabilities `p_0` and kappa = t^n."""

    def __init__(self, p_0: np.ndarray, n: float):
        super().__init__()
        self.p_0 = torch.tensor(p_0, dtype=torch.float64)
        self.n = n

    def forward(self, x, t):
        kappa = t[0].double() ** self.n
        # p_t(z | x_1^i) for every state s and coordinate i, at the tokens of x: (N, 9, 2).
        same = (x[:, None, :] == states[None, :, :]).double()
        likelihood = (1.0 - kappa) * self.p_0[x][:, None, :] + kappa * same
        joint = torch.tensor(q.reshape(-1))[None, :] * likelihood.prod(dim=-1)  # (N, 9)
        weights = joint / joint.sum(dim=-1, keepdim=True)
        one_hot = torch.nn.functional.one_hot(states, VOCAB).double()  # (9, 2, VOCAB)
        return torch.einsum("ns,sik->nik", weights, one_hot).float()


def histogram(x: torch.Tensor) -> np.ndarray:
    index = (x[..., 0] * VOCAB + x[..., 1]).numpy()
    return np.bincount(index.reshape(-1), minlength=VOCAB * VOCAB) / index.size


N = 200_000
mask_p0 = np.eye(VOCAB)[MASK]
uniform_p0 = np.array([1.0, 1.0, 1.0, 0.0]) / 3.0
cases = {
    "mask": dict(p_0=mask_p0, n=2.0, step_size=1 / 8, div_free=0.0, grid=[0.0, 1.0]),
    "uniform_div": dict(p_0=uniform_p0, n=1.0, step_size=1 / 4, div_free=0.5, grid=[0.0, 1.0]),
    "grid": dict(p_0=mask_p0, n=2.0, step_size=1 / 4, div_free=0.0, grid=[0.0, 0.5, 1.0]),
}
for name, case in cases.items():
    solver = MixtureDiscreteEulerSolver(
        model=ExactPosterior(case["p_0"], case["n"]),
        path=MixtureDiscreteProbPath(PolynomialConvexScheduler(n=case["n"])),
        vocabulary_size=VOCAB,
        source_distribution_p=torch.tensor(case["p_0"], dtype=torch.float32),
    )
    source = torch.tensor(case["p_0"], dtype=torch.float64)
    x_init = torch.multinomial(source, N * 2, replacement=True).view(N, 2)
    out = solver.sample(
        x_init=x_init,
        step_size=case["step_size"],
        div_free=lambda t, slope=case["div_free"]: slope * t,  # zero at t = 0
        time_grid=torch.tensor(case["grid"]),
        return_intermediates=len(case["grid"]) > 2,
    )
    for key, value in case.items():
        put(f"solver/{name}/{key}", value)
    if len(case["grid"]) > 2:
        put(f"solver/{name}/histograms", np.stack([histogram(x) for x in out[1:]]))
    else:
        put(f"solver/{name}/histograms", histogram(out)[None])
put("solver/num_samples", N)

os.makedirs(os.path.dirname(OUT), exist_ok=True)
np.savez_compressed(OUT, **data)
print(f"wrote {os.path.normpath(OUT)}: {len(data)} arrays, {os.path.getsize(OUT)} bytes")
