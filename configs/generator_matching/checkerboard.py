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

from flowjax.train import default_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default_config("generator_matching")
    config.data = dict(source="toy", name="checkerboard")
    config.path.parts = "flow+jump"
    config.path.num_bins = 128
    config.path.low = -5.0
    config.path.high = 5.0

    config.model.hidden_dim = 256
    config.model.num_layers = 4

    config.optim.learning_rate = 2e-3
    config.optim.schedule = "cosine"
    config.optim.warmup_steps = 100
    config.optim.final_lr_fraction = 0.02
    config.optim.grad_clip_norm = 1.0
    config.optim.ema_decay = 0.999

    config.train.num_steps = 2_000
    config.train.global_batch_size = 1024
    config.train.log_every = 200
    config.checkpoint.every_steps = 1_000

    config.sample.generator = "superposition"
    config.sample.flow_weight = 0.5
    config.sample.step_size = 0.01
    config.sample.time_power = 2.0
    config.sample.num_samples = 20_000
    config.evaluate.num_points = 8_192
    config.evaluate.num_samples = 20_000

    if arg == "8gaussians":
        config.data.name = "8gaussians"
    elif arg == "smoke":
        config.model.hidden_dim = 32
        config.model.num_layers = 2
        config.path.num_bins = 16
        config.train.num_steps = 20
        config.train.global_batch_size = 256
        config.train.log_every = 5
        config.checkpoint.every_steps = 10
        config.sample.num_samples = 512
        config.sample.batch_size = 256
        config.sample.num_trajectories = 64
        config.sample.step_size = 0.1
        config.evaluate.step_size = 0.25
        config.evaluate.num_points = 256
        config.evaluate.num_samples = 512
        config.evaluate.batch_size = 256
    elif arg is not None:
        raise ValueError(
            f"Unknown variant {arg!r} of the checkerboard config; use '8gaussians', 'smoke' or none."
        )
    return config
