"""Generator Matching (Holderrieth et al., 2024): flow, jump and superposed models of a 1-D
Gaussian mixture.

Paper setting (its 1-D illustrations of the CondOT jump model): the CondOT Gaussian path
p_t(x | z) = N(t z, (1 - t)^2), the flow velocity and the jump model
lambda_t = [k_t]_+ / (1 - t)^3, J_t proportional to [-k_t]_+ N(t z, (1 - t)^2)
(`flowjax.paths.jump`), trained by conditional generator matching (MSE + infinitesimal KL). Here
one `generator_mlp` (4 x 256 Swish) has both heads: a velocity and a rate with 128 jump bins on
[-5, 5] per coordinate; data `flowjax.data`'s mixture1d (weights 0.3 / 0.5 / 0.2, means
-2.5 / 0.5 / 3, standard deviations 0.5 / 0.4 / 0.6); Adam 2e-3 with cosine decay, batch 1024,
2k steps. Sampling: the 50/50 superposition of the flow and jump parts, Euler steps of 0.01 in
tau = 1 - sqrt(1 - t) (100 steps), exact no-jump survival.

Expected result: samples match the data: energy distance to held-out data of order 1e-3 for the
flow, jump and superposed samplers (measured numbers in experiments/generator_matching).

Hardware: a CPU: a few minutes on 2 cores.

Variants (`--config=configs/generator_matching/mixture1d.py:<variant>`):
  (none)  the run above.
  smoke   a tiny model and a few steps: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import toy_generator_matching_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return toy_generator_matching_config("mixture1d", {None: "mixture1d"}, arg)
