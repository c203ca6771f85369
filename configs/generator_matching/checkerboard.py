"""Generator Matching (Holderrieth et al., 2024): flow, jump and superposed models of the 2-D
checkerboard.

Paper setting: the CondOT Gaussian path, factorised over the two coordinates; per coordinate a
velocity and the CondOT jump model (`flowjax.paths.jump`), trained by conditional generator
matching with the per-coordinate losses summed (a factorised path). Here one `generator_mlp`
(4 x 256 Swish) with a velocity and a rate plus 128 jump bins on [-5, 5] per coordinate; data
`flowjax.data`'s checkerboard (uniform on 8 squares of [-4, 4)^2); Adam 2e-3 with cosine decay,
batch 1024, 2k steps. Sampling: the 50/50 superposition, Euler steps of 0.01 in
tau = 1 - sqrt(1 - t), exact no-jump survival.

Expected result: all samplers (flow, jump, superposition, mixed) put most samples on the board's
squares; energy distances to held-out data are in experiments/generator_matching/README.md.

Hardware: a CPU: a few minutes on 2 cores.

Variants (`--config=configs/generator_matching/checkerboard.py:<variant>`):
  (none)      the run above.
  8gaussians  the same on the 8-Gaussians mixture.
  smoke       a tiny model and a few steps: seconds on a CPU, for tests.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.recipes import toy_generator_matching_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return toy_generator_matching_config("checkerboard", {None: "checkerboard", "8gaussians": "8gaussians"}, arg)
